"""Text normalisation, tokenisation and token F1 shared by LV-Eval, InfiniteBench and LongBench.

All three benchmarks use the same SQuAD-style English normalisation and the same Chinese punctuation set
(which lists the closing ``》`` but not the opening ``《``: kept, because the official scores depend on it).
"""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Any

#: Chinese and full-width punctuation removed by ``normalize_zh_answer`` (verbatim; note ``《`` is absent).
ZH_PUNCTUATION = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿"
    "–—‘’‛“”„‟…‧﹏."
)

_EN_DELETE = str.maketrans("", "", string.punctuation)
_ZH_DELETE = str.maketrans("", "", string.punctuation + ZH_PUNCTUATION)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_en(text: str) -> str:
    """Lowercase, drop ASCII punctuation, turn the articles a/an/the into spaces, collapse whitespace."""
    text = text.lower().translate(_EN_DELETE)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_zh(text: str) -> str:
    """Lowercase, drop ASCII and Chinese punctuation (not ``《``), delete all whitespace."""
    return "".join(text.lower().translate(_ZH_DELETE).split())


def en_tokens(text: str) -> list[str]:
    """Whitespace tokens of the normalised English text."""
    return normalize_en(text).split()


@cache
def _jieba() -> Any:
    """Import jieba once, quietly (it logs its dictionary loading at DEBUG level to stderr)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def jieba_cut(text: str) -> list[str]:
    """``jieba.cut(text, cut_all=False)`` (precise mode, HMM on), as every official Chinese metric calls it."""
    return list(_jieba().cut(text, cut_all=False))


def zh_tokens(text: str) -> list[str]:
    """jieba tokens, each normalised with :func:`normalize_zh`; tokens that normalise to '' are dropped."""
    return [tok for tok in (normalize_zh(word) for word in jieba_cut(text)) if tok]


def token_f1(prediction: Sequence[Any], reference: Sequence[Any]) -> float:
    """Multiset-overlap F1 of two token sequences; 0 when nothing overlaps (so never divides by zero)."""
    common = Counter(prediction) & Counter(reference)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(prediction)
    recall = same / len(reference)
    return (2 * precision * recall) / (precision + recall)
