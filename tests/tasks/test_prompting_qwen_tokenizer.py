"""InfiniteBench prompting on a real byte-level BPE tokenizer (Qwen2.5's), against the official definition.

The open-model scripts' ``truncate_by_tokens`` (InfiniteBench ``src/eval_yarn_mistral.py``), restated: ids =
``tok.encode(text)``; if ``len(ids) > L``: ``split = L // 2``, ids = ``ids[:split] + ids[-split:]``; the prompt is
``tok.decode(ids, skip_special_tokens=True)``, cut or not, and the model is fed ``tok(prompt).input_ids``.
``official`` below is that definition written out; the project's ``prepare`` must give the same text and ids,
over English, Chinese and mixed multi-byte text, odd and even budgets, cuts inside a character, and special-token
strings in the context. Skipped when the tokenizer folder is absent.
"""

from __future__ import annotations

import pytest

from tasks.prompting import Truncation, prepare
from tests.real_model import FETCH, real_model_dir

QWEN = real_model_dir()


@pytest.fixture(scope="module")
def tok():
    if QWEN is None:
        pytest.skip(f"no real model's local copy (make it with `{FETCH}`)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(QWEN)


def official(tok, text: str, L: int) -> tuple[str, list[int]]:
    ids = tok.encode(text)
    if len(ids) > L:
        split = L // 2
        ids = ids[:split] + ids[-split:]
    prompt = tok.decode(ids, skip_special_tokens=True)
    return prompt, tok(prompt)["input_ids"]


EN = "".join(f"Line {i}: the grass is green, the sky is blue. " for i in range(60))
ZH = "".join(f"第{i}行：草是绿的，天是蓝的。这是一段很长的中文文本。" for i in range(60))
MIXED = "".join(f"{i} naïve café — 数据 ✓ 🧬 𠀀 déjà vu; " for i in range(60))


def _check(tok, text: str, L: int) -> None:
    want_text, want_ids = official(tok, text, L)
    got = prepare(text, tok, Truncation("middle", L, style="infinitebench"), chat_template=False)
    assert got.text == want_text
    assert got.input_ids == want_ids
    assert got.prompt_tokens_before == len(tok.encode(text))
    assert got.truncated == (len(tok.encode(text)) > L)


@pytest.mark.parametrize("name, text", [("en", EN), ("zh", ZH), ("mixed", MIXED)])
@pytest.mark.parametrize("L", [10_000, 301, 300, 127, 2])
def test_matches_the_official_definition(tok, name: str, text: str, L: int) -> None:
    _check(tok, text, L)


def test_odd_budget_keeps_half_at_each_end(tok) -> None:
    ids = tok.encode(EN)
    got = prepare(EN, tok, Truncation("middle", 301, style="infinitebench"), chat_template=False)
    assert got.text == tok.decode(ids[:150] + ids[-150:])  # 150 + 150 = L - 1 tokens, by hand


def test_a_cut_inside_a_character(tok) -> None:
    """A character spread over several byte-level tokens, cut between them: the official decode writes U+FFFD
    for the broken bytes, and so must the project."""
    text = "开始" + "🧬" * 40 + "结束" * 40
    ids = tok.encode(text)
    # the first split point that falls inside a character: the decoded head ends in a replacement char
    split = next(k for k in range(1, len(ids) // 2) if tok.decode(ids[:k]).endswith("\ufffd"))
    L = 2 * split
    assert len(ids) > L
    want_text, _ = official(tok, text, L)
    assert "\ufffd" in want_text
    _check(tok, text, L)


@pytest.mark.parametrize("L", [100_000, 51])
def test_special_token_strings_in_the_context_are_removed(tok, L: int) -> None:
    """code_debug's sources hold ``<|endoftext|>``; the official round trip drops it, cut or not."""
    special = "<|endoftext|>"
    assert special in tok.all_special_tokens or special in tok.get_vocab()
    text = f"{special}def f():\n    return 1  # {special}\n" * 10 + "Which function has a bug?"
    got = prepare(text, tok, Truncation("middle", L, style="infinitebench"), chat_template=False)
    assert special not in got.text
    assert tok.convert_tokens_to_ids(special) not in got.input_ids
    _check(tok, text, L)
