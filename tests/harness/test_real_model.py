"""The real Qwen2.5-Coder-0.5B-Instruct (its local quantized copy) on the CPU: folder, tokenizer, chat template,
and a short generation through the memory methods.

Runs whenever the copy is built (`python -m harness fetch-model qwen2.5-coder-0.5b`; `.ci/run` builds it first)
and skips with that command otherwise (fails instead under `AHN_HARNESS_REQUIRE_REAL_MODEL=1`, as `.ci/run` sets). Expectations are derived by hand: the special tokens' ids, the GPT-2
byte-level order of Qwen2's first 256 tokens, Qwen2's one-digit number splitting, the chat template's text.
"""

from __future__ import annotations

import json
import os

import pytest

from harness import local_models

COPY = "qwen2.5-coder-0.5b"
REQUIRE_ENV = "AHN_HARNESS_REQUIRE_REAL_MODEL"  # set by .ci/run
IM_START, IM_END, ENDOFTEXT = 151644, 151645, 151643


@pytest.fixture(scope="module")
def real_copy():
    folder = local_models.built_copy(COPY)
    if folder is None:
        why = (f"the real model's local copy is not built in {local_models.local_copy_dir(COPY)}: run "
               f"`python -m harness fetch-model {COPY}`")
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):  # CI builds the copy first: a skip would hide a failure
            pytest.fail(f"{REQUIRE_ENV} is set and {why}")
        pytest.skip(why)
    return folder


@pytest.fixture(scope="module")
def tokenizer(real_copy):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(real_copy)


def _byte_token_ids() -> dict[int, int]:
    """GPT-2's byte-level order, which Qwen2's vocabulary starts with: the 188 printable bytes ('!'..'~',
    '¡'..'¬', '®'..'ÿ') take ids 0-187 in byte order, the other 68 bytes ids 188-255 in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return {b: i for i, b in enumerate(printable + rest)}


def test_the_folder_is_a_plain_bf16_model_of_the_release_shape(real_copy):
    from baselines.model_configs import get_dims, hf_config

    local_models.check_plain_folder(real_copy)  # no quantization config, all bf16, exactly the expected tensors
    config = json.loads((real_copy / "config.json").read_text())
    release = hf_config("coder-0.5b")
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "max_position_embeddings"):
        assert config[key] == release[key], key
    assert config["model_type"] == "qwen2" and config["tie_word_embeddings"] is False  # the GGUF's own LM head
    assert get_dims("coder-0.5b").head_dim == 64
    note = local_models.read_provenance(real_copy)
    assert note["source_file"]["sha256"] == local_models.PINS[COPY].sha256
    assert len(note["packages"]) == 6


def test_special_tokens_and_byte_level_ids(tokenizer):
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>", "<|endoftext|>"]) == [
        IM_START, IM_END, ENDOFTEXT]
    # 151,643 BPE tokens, then 22 added tokens (<|endoftext|> ... <|file_sep|>); the GGUF's token list also names
    # the embedding's unused rows 151,665-151,935 ("[PAD151665]" ...), which no text encodes to
    assert sorted(tokenizer.added_tokens_decoder) == list(range(ENDOFTEXT, 151_665))
    assert tokenizer.convert_ids_to_tokens([151_664, 151_665, 151_935]) == ["<|file_sep|>", "[PAD151665]",
                                                                           "[PAD151935]"]
    assert len(tokenizer) == 151_936
    # the file's control tokens are special, its two user-defined ones (<tool_call>, </tool_call>) are not
    specials = [i for i, t in tokenizer.added_tokens_decoder.items() if t.special]
    assert len(specials) == 20 and tokenizer.decode([151_657, 151_644], skip_special_tokens=True) == "<tool_call>"
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    # Qwen2's NFC normalizer: a decomposed accent encodes as the composed one
    assert tokenizer.encode("cafe\u0301", add_special_tokens=False) == tokenizer.encode("caf\u00e9",
                                                                                        add_special_tokens=False)
    byte_ids = _byte_token_ids()
    for ch in "A", "a", "0", "!", "~", "\n", " ":
        assert tokenizer.encode(ch, add_special_tokens=False) == [byte_ids[ord(ch)]], repr(ch)
    # Qwen2 splits numbers into single digits, so a passkey is one byte-level token per digit
    assert tokenizer.encode("90417", add_special_tokens=False) == [byte_ids[ord(d)] for d in "90417"]
    text = "def add(a, b):\n    return a + b  # 1-2 ünïcödé ✓"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text and len(ids) < len(text.encode())  # round trip; merges happened


def test_chat_template_text_and_prompt_ids(tokenizer):
    messages = [{"role": "user", "content": "Hello"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."  # the template's default
    assert text == (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                    "<|im_start|>assistant\n")
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    nl = _byte_token_ids()[ord("\n")]

    def enc(s: str) -> list[int]:
        return tokenizer.encode(s, add_special_tokens=False)

    want = ([IM_START, *enc("system"), nl, *enc(system), IM_END, nl, IM_START, *enc("user"), nl, *enc("Hello"),
             IM_END, nl, IM_START, *enc("assistant"), nl])
    assert list(ids) == want
    assert [ids[0], ids[-4], ids[-3], ids[-1]] == [IM_START, nl, IM_START, nl]
    assert sum(i == IM_START for i in ids) == 3 and sum(i == IM_END for i in ids) == 2
    assert tokenizer.decode(ids) == text


def test_full_attention_finds_a_1k_passkey_and_a_short_window_does_not(real_copy, tokenizer):
    """The needle sits ~500 tokens before the question: full attention reads it; 16 sinks + a 256-token window
    have dropped it before the question arrives, so the passkey cannot be produced."""
    import torch
    from transformers import AutoModelForCausalLM

    from baselines import attach, make_method
    from baselines.engine import generate
    from tasks.prompting import prepare
    from tasks.registry import load_samples, task_settings
    from tasks.scoring import score_detailed

    sample = load_samples("synthetic:passkey@1k", limit=1, tokenizer=tokenizer)[0]
    settings = task_settings(sample)
    prepared = prepare(sample, tokenizer, settings.truncation, settings.chat_template)
    ids = torch.tensor([prepared.input_ids])
    key = str(sample.answers[0] if isinstance(sample.answers, list) else sample.answers)
    sinks, window = 16, 256
    needle_at = len(tokenizer.encode(prepared.text[:prepared.text.index(key)], add_special_tokens=False))
    assert 900 <= ids.shape[1] <= 1200 and sinks < needle_at < ids.shape[1] - window - 64  # outside the window

    model = AutoModelForCausalLM.from_pretrained(real_copy, dtype=torch.float32, attn_implementation="sdpa").eval()
    answers = {}
    for name, method in (("full", make_method("full")), ("swa", make_method("swa", sinks=sinks, window=window))):
        with attach(model, method):
            out = generate(model, method, ids, max_new_tokens=sample.max_new_tokens, chunk_size=512)
        prediction = tokenizer.decode(out.tokens[0], skip_special_tokens=True)
        answers[name] = (prediction, score_detailed(sample.task, prediction, sample.answers, sample.extra).score)
    assert answers["full"][1] == 1.0 and key in answers["full"][0], answers
    assert answers["swa"][1] == 0.0 and key not in answers["swa"][0], answers
