"""studies/shared_context_tiny.py cuts each passkey_k prompt into its context and one question per name: asked of
the sample's own name, context + question is the sample's prompt, token for token."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import AutoTokenizer

from tasks.registry import load_samples

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("shared_context_tiny", REPO / "studies" / "shared_context_tiny.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_split_reassembles_the_asked_prompt_and_finds_every_key():
    script = _script()
    tokenizer = AutoTokenizer.from_pretrained(REPO / script.BASE)
    for sample in load_samples("synthetic:passkey_k4@1k", limit=3, tokenizer=tokenizer):
        context, questions, keys = script.split(sample)
        asked = sample.extra["asked"]
        assert context + questions[asked] == sample.prompt
        assert keys[asked] == sample.answers[0] and len(set(keys)) == 4
        head, tail = script.parts(tokenizer, context, questions[asked])
        assert head + tail == tokenizer.encode(sample.prompt)
