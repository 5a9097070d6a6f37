"""LV-Eval metrics (``metrics.py`` of infinigence/LVEval), quirks included (`docs/BENCHMARKS.md` A5).

Quirks kept on purpose, because the published numbers depend on them: the keyword gate's denominator counts
blacklisted words, the F1 after the gate uses the full answer with no blacklist, Chinese gating falls back to
the whole answer when there are no keywords, ``《`` is not punctuation, dureader is jieba-cut twice, and only
``answers[0]`` is scored.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tasks.scoring.base import OfficialRaise, as_list, require_text
from tasks.scoring.normalize import en_tokens, jieba_cut, normalize_zh, token_f1, zh_tokens
from tasks.scoring.rouge_l import rouge_l_f

ABANDON_WORDS_EN = frozenset(
    "and to of in her was with for it from is that his he by she they or at because be on are their what as "
    "had were about being this who but have has when which does".split()
)
ABANDON_WORDS_ZH = frozenset(
    "的 和 是 等 在 年 可以 为 与 ‰ 了 或 一种 月 c 至 日 有 进行 于 不 中 × 根据 小 由 亩 也 要 指 法 会 元 主要 以及 通过 "
    "首先 对 然后 号 以 所 后 丁 包括 无 将 用 能 形 方面 因素 位于 而 从 到 一定 用于 但 使用 让 具有 并 亿元 万元 上 类 "
    "基于 才 来 地 片 其他 个 或者 变得 时 给 你 使 条 受 已经 带 度".split()
)

EN_GATE = 0.2
ZH_GATE = 0.4


def _keyword_recall(pred_tokens: list[str], kw_tokens: list[str], blacklist: frozenset[str]) -> float:
    """Share of keyword tokens found in the prediction; blacklisted words are not counted as found but still
    count in the denominator (official behaviour)."""
    common = Counter(pred_tokens) & Counter(kw_tokens)
    found = sum(n for word, n in common.items() if word not in blacklist)
    if not kw_tokens:
        raise OfficialRaise("answer keywords normalise to no tokens: the official gate divides by zero")
    return found / len(kw_tokens)


def qa_f1_score(prediction: str, ground_truth: str) -> float:
    """factrecall_en: plain English token F1."""
    return token_f1(en_tokens(prediction), en_tokens(ground_truth))


def qa_f1_zh_score(prediction: str, ground_truth: str) -> float:
    """factrecall_zh: F1 over normalised jieba tokens."""
    return token_f1(zh_tokens(prediction), zh_tokens(ground_truth))


def qa_f1_score_with_gold_ans(prediction: str, ground_truth: str, gold_ans: Any = None) -> float:
    """English QA: keyword-recall gate at 0.2 (when keywords exist), then F1 against the full answer."""
    pred_tokens = en_tokens(prediction)
    gt_tokens = en_tokens(ground_truth)
    if gold_ans:
        kw = require_text(gold_ans, "answer_keywords")
        if _keyword_recall(pred_tokens, en_tokens(kw), ABANDON_WORDS_EN) < EN_GATE:
            return 0.0
    return token_f1(pred_tokens, gt_tokens)


def qa_f1_zh_score_with_gold_ans(prediction: str, ground_truth: str, gold_ans: Any = None) -> float:
    """Chinese QA: gate at 0.4 on keyword recall, the keywords defaulting to the whole answer, then F1."""
    pred_tokens = zh_tokens(prediction)
    gt_tokens = zh_tokens(ground_truth)
    if not gold_ans:
        gold_ans = ground_truth
    if gold_ans:
        kw = require_text(gold_ans, "answer_keywords")
        if _keyword_recall(pred_tokens, zh_tokens(kw), ABANDON_WORDS_ZH) < ZH_GATE:
            return 0.0
    return token_f1(pred_tokens, gt_tokens)


def _blacklisted_double_cut(text: str) -> str:
    """jieba-cut, join with spaces, jieba-cut again (spaces become '' tokens, kept), normalise, drop the
    blacklist, join with spaces: the text rouge sees in ``rouge_zh_score_blacklist``."""
    tokens = jieba_cut(" ".join(jieba_cut(text)))
    return " ".join(tok for tok in (normalize_zh(t) for t in tokens) if tok not in ABANDON_WORDS_ZH)


def rouge_zh_score_blacklist(prediction: str, ground_truth: str, gold_ans: Any = None) -> float:
    """dureader_mixup: ROUGE-L F (rouge 1.0.1) of the blacklisted double-cut texts; any rouge error scores 0."""
    return rouge_l_f(_blacklisted_double_cut(prediction), _blacklisted_double_cut(ground_truth))


#: dataset → (metric, language), as in the official ``config.DATASET_METRIC``.
DATASETS: dict[str, tuple[Any, str]] = {
    "loogle_SD_mixup": (qa_f1_score_with_gold_ans, "en"),
    "cmrc_mixup": (qa_f1_zh_score_with_gold_ans, "zh"),
    "multifieldqa_en_mixup": (qa_f1_score_with_gold_ans, "en"),
    "multifieldqa_zh_mixup": (qa_f1_zh_score_with_gold_ans, "zh"),
    "factrecall_en": (qa_f1_score, "en"),
    "factrecall_zh": (qa_f1_zh_score, "zh"),
    "dureader_mixup": (rouge_zh_score_blacklist, "zh"),
    "loogle_CR_mixup": (qa_f1_score_with_gold_ans, "en"),
    "loogle_MIR_mixup": (qa_f1_score_with_gold_ans, "en"),
    "hotpotwikiqa_mixup": (qa_f1_score_with_gold_ans, "en"),
    "lic_mixup": (qa_f1_zh_score_with_gold_ans, "zh"),
}


def keywords(extra: dict[str, Any]) -> Any:
    """The answer keywords of a sample: ``gold_ans`` (the official prediction files) or ``answer_keywords``
    (the dataset field); None when neither is given."""
    if extra.get("gold_ans") is not None:
        return extra["gold_ans"]
    return extra.get("answer_keywords")


def score_lveval(dataset: str, prediction: Any, answers: Any, extra: dict[str, Any]) -> float:
    """Score one LV-Eval sample: the dataset's metric on ``answers[0]`` only (official loop breaks after it)."""
    metric, _ = DATASETS[dataset]
    pred = require_text(prediction)
    refs = as_list(answers)
    if not refs:
        return 0.0  # the official loop over answers runs zero times and the sample keeps its 0
    gt = require_text(refs[0], "answers[0]")
    if metric in (qa_f1_score, qa_f1_zh_score):
        return metric(pred, gt)
    return metric(pred, gt, keywords(extra))
