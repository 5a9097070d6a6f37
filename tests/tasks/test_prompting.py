"""Truncation and chat-template order, to the token, with the byte tokenizer (1 token = 1 byte)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.byte_tokenizer import build_byte_tokenizer
from tasks.prompting import NO_TRUNCATION, Prepared, Truncation, prepare, truncate_text
from tasks.prompts import (
    INFINITEBENCH_CHAT_PROMPTS,
    INFINITEBENCH_OPEN_PROMPTS,
    LONGBENCH_MAX_GEN,
    LONGBENCH_PROMPTS,
    LVEVAL_DATASET_PROMPT,
    LVEVAL_MAX_GEN,
    load_longbench_prompts,
)
from tasks.sample import Sample

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "benchmarks.md"
CHAT_HEAD = "<|im_start|>user\n"
CHAT_TAIL = "<|im_end|>\n<|im_start|>assistant\n"
CHAT_OVERHEAD = 3 + len("user\n") + len("\n") + len("assistant\n")  # 3 special tokens + the bytes


@pytest.fixture(scope="module")
def tok():
    return build_byte_tokenizer()


def _record_prompt() -> str:
    context = "".join(f"Passage {i}: the sky is blue and the grass is green.\n" for i in range(400))
    return LVEVAL_DATASET_PROMPT["factrecall_en"].format(context=context, input="Who discovered gravity?")


def _sample(prompt: str) -> Sample:
    return Sample("lveval/factrecall_en", "0", "16k", prompt, ["Ludwig Beethoven"], "en", 16)


def test_lveval_middle_truncation_exact(tok) -> None:
    prompt = _record_prompt()
    n = len(prompt.encode())
    L = 1001  # odd: LV-Eval keeps 2 * int(L/2) = 1000 tokens
    p = prepare(_sample(prompt), tok, Truncation("middle", L), chat_template=False)
    assert isinstance(p, Prepared)
    assert p.prompt_tokens_before == n and p.truncated
    assert p.prompt_tokens_after == 1000 == len(p.input_ids)
    assert p.text == prompt[:500] + prompt[-500:]  # ASCII: one char per token
    assert p.text.startswith("Please answer the following questions based on the given article.")
    assert p.text.endswith("Question: Who discovered gravity?\nAnswer:")  # the question at the end survives


def test_lveval_order_truncate_then_chat(tok) -> None:
    prompt = _record_prompt()
    p = prepare(_sample(prompt), tok, Truncation("middle", 1000), chat_template=True)
    assert p.text == CHAT_HEAD + prompt[:500] + prompt[-500:] + CHAT_TAIL
    # the template is added after truncation: its tokens are not cut, and the count is exact
    assert p.prompt_tokens_after == 1000 + CHAT_OVERHEAD == len(p.input_ids)
    assert p.prompt_tokens_before == len(prompt.encode())
    assert p.input_ids[0] == 257 and p.input_ids[-len("assistant\n") - 1] == 257


def test_infinitebench_middle_odd_length_keeps_half_at_each_end(tok) -> None:
    """The open-model scripts' ``truncate_input``: ``split = L // 2``; ``ids[:split] + ids[-split:]``. An odd
    ``L`` keeps ``L - 1`` tokens, ``L // 2`` at each end (``eval_utils.truncate_input``'s ``ids[-L//2:]``, one
    more tail token, is the GPT-4 path's and not used here)."""
    prompt = "".join(chr(ord("a") + i % 26) for i in range(300))
    text, before, truncated = truncate_text(tok, prompt, Truncation("middle", 101, style="infinitebench"))
    assert before == 300 and truncated
    assert text == prompt[:50] + prompt[-50:]  # 50 head + 50 tail tokens
    p = prepare(prompt, tok, Truncation("middle", 100, style="infinitebench"), chat_template=False)
    assert p.text == prompt[:50] + prompt[-50:] and p.prompt_tokens_after == 100


def test_infinitebench_drops_special_token_strings_even_uncut(tok) -> None:
    """The official ``truncate_by_tokens`` always returns ``decode(ids, skip_special_tokens=True)``, cut or not,
    and that text is what is tokenised for the model: a special-token string inside the context is gone."""
    special = "<|im_end|>"  # one special token of the byte tokenizer (id 258)
    prompt = f"code before {special} code after"
    p = prepare(prompt, tok, Truncation("middle", 10_000, style="infinitebench"), chat_template=False)
    assert not p.truncated and p.text == "code before  code after"
    assert 258 not in p.input_ids and p.input_ids == list(p.text.encode())
    cut = prepare(special + "x" * 300 + special, tok, Truncation("middle", 101, style="infinitebench"),
                  chat_template=False)
    assert cut.truncated and cut.text == "x" * 49 + "x" * 49 and 258 not in cut.input_ids
    # LV-Eval's truncation leaves an uncut prompt as it is (its own code encodes the prompt once)
    kept = prepare(prompt, tok, Truncation("middle", 10_000), chat_template=False)
    assert kept.text == prompt and 258 in kept.input_ids


def test_middle_cut_inside_a_multibyte_character(tok) -> None:
    # a cut through a UTF-8 sequence decodes to U+FFFD; lengths are recomputed from the real text
    prompt = "问" * 100  # 300 bytes
    p = prepare(prompt, tok, Truncation("middle", 101), chat_template=False)
    assert p.truncated and p.prompt_tokens_before == 300
    assert p.prompt_tokens_after == len(p.text.encode()) == len(p.input_ids)
    assert "\ufffd" in p.text


def test_left_truncation_keeps_last_tokens_and_loses_instruction(tok) -> None:
    prompt = LONGBENCH_PROMPTS["hotpotqa"].format(context="Lorem ipsum dolor sit amet. " * 200, input="Who?")
    n = len(prompt.encode())
    trunc = Truncation("left", 2000, reserve=LONGBENCH_MAX_GEN["hotpotqa"])  # keep the last 1968
    p = prepare(prompt, tok, trunc, chat_template=True)
    assert p.truncated and p.prompt_tokens_before == n
    kept = prompt[-1968:]
    assert p.text == CHAT_HEAD + kept + CHAT_TAIL
    assert p.prompt_tokens_after == 1968 + CHAT_OVERHEAD
    assert "Answer the question based on the given passages" not in kept[:60]
    assert not kept.startswith("Answer the question")  # the leading instruction is lost
    assert kept.endswith("Question: Who?\nAnswer:")


def test_no_truncation_when_it_fits(tok) -> None:
    prompt = "short prompt"
    for trunc in (Truncation("middle", 12), Truncation("left", 12, 2), NO_TRUNCATION):
        p = prepare(prompt, tok, trunc, chat_template=False)
        assert not p.truncated and p.text == prompt
        assert p.prompt_tokens_before == p.prompt_tokens_after == 12
    # strictly longer than max_tokens triggers; left keeps max_tokens - reserve
    p = prepare(prompt + "!", tok, Truncation("left", 12, 2), chat_template=False)
    assert p.truncated and p.text == (prompt + "!")[-10:]


def test_an_uncut_prompt_is_encoded_once_and_a_cut_one_again(tok) -> None:
    class Counting:  # the byte tokenizer, counting encodes
        def __init__(self) -> None:
            self.encodes = 0

        def encode(self, text, add_special_tokens=True):
            self.encodes += 1
            return tok.encode(text, add_special_tokens=add_special_tokens)

        def decode(self, ids, skip_special_tokens=False):
            return tok.decode(ids, skip_special_tokens=skip_special_tokens)

    prompt = "a prompt of 26 bytes here."
    counting = Counting()
    p = prepare(prompt, counting, Truncation("middle", 100), chat_template=False)
    assert counting.encodes == 1 and not p.truncated
    assert p.input_ids == list(prompt.encode()) and p.prompt_tokens_after == 26  # the byte tokenizer: id = byte
    counting = Counting()
    p = prepare(prompt, counting, Truncation("middle", 10), chat_template=False)
    assert counting.encodes == 2 and p.truncated  # the cut text is what is fed: encoded after decoding
    assert p.input_ids == list((prompt[:5] + prompt[-5:]).encode())


def test_chat_template_is_explicit(tok) -> None:
    class NoTemplate:
        chat_template = None

        def encode(self, text, add_special_tokens=True):
            return list(text.encode())

    with pytest.raises(ValueError, match="no chat template"):
        prepare("x", NoTemplate(), NO_TRUNCATION, chat_template=True)
    p = prepare("x", NoTemplate(), NO_TRUNCATION, chat_template=False)
    assert p.input_ids == [120]


def test_truncation_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        Truncation("right", 10)
    with pytest.raises(ValueError, match="reserve"):
        Truncation("left", 10, reserve=10)
    with pytest.raises(ValueError, match="style"):
        Truncation("middle", 10, style="other")
    assert Truncation("left", 128_000, 256).budget == 127_744
    assert Truncation("middle", 4).to_dict() == {"kind": "middle", "max_tokens": 4, "reserve": 0, "style": "lveval"}


# ---- prompt texts against the spec ------------------------------------------------------------------------


def _spec_blocks(text: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    lines = text.split("\n")
    a3: dict[str, str] = {}
    i = next(k for k, line in enumerate(lines) if line.startswith("### A3"))
    keys: list[str] | None = None
    while not lines[i].startswith("### A4"):
        line = lines[i]
        if line.endswith(":") and not line.startswith(("#", '"')):
            keys = [k.strip() for k in line[:-1].split("(")[0].split(",")]
        elif line.startswith('"') and keys:
            a3.update({k: json.loads(line) for k in keys})
            keys = None
        i += 1

    def block(marker: str) -> dict[str, str]:
        j = next(k for k, line in enumerate(lines) if line.startswith(marker)) + 2
        out = {}
        while lines[j] != "```":
            key, value = lines[j].split(": ", 1)
            out[key] = json.loads(value)
            j += 1
        return out

    return a3, block("**Open-model set"), block("**Chat-style set")


def test_prompts_are_verbatim_from_the_spec() -> None:
    if not SPEC.is_file():
        pytest.skip("../shared/spec is absent")
    a3, open_set, chat_set = _spec_blocks(SPEC.read_text(encoding="utf-8"))
    assert LVEVAL_DATASET_PROMPT == a3 and len(a3) == 11
    assert INFINITEBENCH_OPEN_PROMPTS == open_set and len(open_set) == 12
    assert INFINITEBENCH_CHAT_PROMPTS == chat_set and len(chat_set) == 12
    assert set(LVEVAL_DATASET_PROMPT) == set(LVEVAL_MAX_GEN)


def test_longbench_prompts_and_override(tmp_path: Path) -> None:
    assert "asconcisely" in LONGBENCH_PROMPTS["narrativeqa"]
    for t, p in LONGBENCH_PROMPTS.items():
        assert "{context}" in p and "{input}" in p, t
    (tmp_path / "dataset2prompt.json").write_text(
        json.dumps({"qmsum": "Q {context} {input}", "gov_report": "unused"}), encoding="utf-8"
    )
    got = load_longbench_prompts(tmp_path)
    assert got["qmsum"] == "Q {context} {input}" and "gov_report" not in got
    assert got["hotpotqa"] == LONGBENCH_PROMPTS["hotpotqa"]
    assert load_longbench_prompts(tmp_path / "dataset2prompt.json") == got


def test_ahn_paper_infinitebench_prompt() -> None:
    from tasks.prompts import AHN_INFINITEBENCH_PROMPT

    # C2: the gpt4-set En.QA prompt, with {input}, used for both languages
    assert AHN_INFINITEBENCH_PROMPT == INFINITEBENCH_CHAT_PROMPTS["longbook_qa_eng"].replace("{question}", "{input}")
    if SPEC.is_file():
        assert json.dumps(AHN_INFINITEBENCH_PROMPT) in SPEC.read_text(encoding="utf-8")
