"""No model the harness or the training recipe runs has its RoPE frequencies in bf16.

A spy on the rotary modules of every supported family records the dtype of ``inv_freq`` at each forward while
``harness run`` (bf16 weights) and the recipe (a bf16 base loaded by its own loader) run end to end.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import ahn.method  # noqa: F401  (registers the AHN methods)
from ahn.checkpoint import save_ahn_checkpoint
from ahn.train.config import ConfigError, load_config
from ahn.train.data import ListSource
from ahn.train.loop import load_base, train
from baselines import attach, make_method
from baselines.precision import cast_keeping_rope, check_rope_fp32, rope_buffers
from tests.tiny_models import tiny_model

ROTARY_CLASSES = {
    "qwen2": "transformers.models.qwen2.modeling_qwen2.Qwen2RotaryEmbedding",
    "qwen3": "transformers.models.qwen3.modeling_qwen3.Qwen3RotaryEmbedding",
    "llama": "transformers.models.llama.modeling_llama.LlamaRotaryEmbedding",
    "mistral": "transformers.models.mistral.modeling_mistral.MistralRotaryEmbedding",
}


@pytest.fixture
def rotary_calls(monkeypatch) -> list[tuple[torch.dtype, torch.dtype]]:
    """(inv_freq dtype, input dtype) of every rotary forward in the test."""
    import importlib

    seen: list[tuple[torch.dtype, torch.dtype]] = []
    for path in ROTARY_CLASSES.values():
        module, name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        original = cls.forward

        def forward(self, x, *args, _original=original, **kwargs):
            seen.append((self.inv_freq.dtype, x.dtype))
            return _original(self, x, *args, **kwargs)

        monkeypatch.setattr(cls, "forward", forward)
    return seen


def _tiny_world(tmp_path, family: str):
    """A random tiny base saved in bf16 with the byte tokenizer, and an AHN-GDN checkpoint for it."""
    from tasks.byte_tokenizer import save_byte_tokenizer

    model = tiny_model(family, vocab=259)
    model.generation_config.eos_token_id = 258
    method = make_method("ahn-gdn", sinks=4, window=60)
    with attach(model, method):
        with torch.no_grad():
            for block in method.blocks:
                block.fn.o_proj.weight.normal_(0, 0.05)
        save_ahn_checkpoint(model, tmp_path / "ahn", "gdn", model.config.to_dict())
    cast_keeping_rope(model, torch.bfloat16).save_pretrained(tmp_path / "base")
    save_byte_tokenizer(tmp_path / "base")
    return tmp_path / "base", tmp_path / "ahn"


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_harness_run_in_bf16_keeps_rope_fp32(tmp_path, rotary_calls, family):
    from harness.cli import main
    from harness.store import load_run

    base, ckpt = _tiny_world(tmp_path, family)
    assert main(["run", "--model", str(base), "--method", "ahn-gdn", "--sinks", "4", "--window", "60",
                 "--chunk", "64", "--ahn-checkpoint", str(ckpt), "--tasks", "synthetic:passkey@512", "--limit", "1",
                 "--max-new-tokens", "3", "--dtype", "bfloat16", "--device", "cpu", "--no-progress",
                 "--output", str(tmp_path / "run")]) == 0
    assert all(r["status"] == "ok" for r in load_run(tmp_path / "run").records)
    assert rotary_calls, "no rotary forward ran"
    assert {x for _, x in rotary_calls} == {torch.bfloat16}  # the run really was in bf16
    assert {f for f, _ in rotary_calls} == {torch.float32}


def test_recipe_on_a_bf16_base_keeps_rope_fp32(tmp_path, rotary_calls):
    base, _ = _tiny_world(tmp_path, "qwen2")
    cfg = load_config(None, [f"base={base}", f"output_dir={tmp_path / 'out'}", "window.mode=fixed", "window.sinks=2",
                             "window.window=14", "steps=2", "grad_accum=1", "micro_batch_size=1", "save_every=0",
                             "gradient_checkpointing=false", "precision=bf16", "device=cpu"])
    model, tokenizer = load_base(cfg, torch.device("cpu"), torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    rows = torch.randint(0, 259, (2, 48), generator=torch.Generator().manual_seed(0)).tolist()
    res = train(cfg, model=model, tokenizer=tokenizer, source=ListSource([{"input_ids": r, "labels": r} for r in rows]),
                echo=lambda _: None)
    assert res.steps_done == 2
    assert rotary_calls and {f for f, _ in rotary_calls} == {torch.float32}


def test_a_whole_model_cast_is_refused_and_the_keeping_cast_is_not(tmp_path):
    model = tiny_model("qwen2")
    assert set(rope_buffers(model)) == {"model.rotary_emb.inv_freq", "model.rotary_emb.original_inv_freq"}
    exact = model.model.rotary_emb.inv_freq.clone()
    cast_keeping_rope(model, torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert torch.equal(model.model.rotary_emb.inv_freq, exact)
    check_rope_fp32(model)
    model.to(torch.bfloat16)  # what the fixtures warn about
    with pytest.raises(ValueError, match=r"model.rotary_emb.inv_freq \(torch.bfloat16\).*cast_keeping_rope"):
        check_rope_fp32(model)
    cfg = load_config(None, ["base=tiny", f"output_dir={tmp_path}", "window.mode=fixed", "window.sinks=2",
                             "window.window=14", "steps=1"])
    with pytest.raises(ConfigError, match="RoPE frequencies must stay fp32"):
        train(cfg, model=model, source=ListSource([{"input_ids": [1] * 32, "labels": [1] * 32}]),
              echo=lambda _: None)


def test_tiny_base_save_keeps_rope_fp32(tmp_path):
    from ahn.train.tiny_base import build_model, load_tiny_config, save_base

    cfg = load_tiny_config(None, ["hidden_size=64", "num_layers=1", "intermediate_size=64", "num_heads=2",
                                  "num_kv_heads=1", "head_dim=32"])
    model = build_model(cfg)
    save_base(model, tmp_path)
    assert next(model.parameters()).dtype == torch.bfloat16
    check_rope_fp32(model)
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert next(loaded.parameters()).dtype == torch.bfloat16
    check_rope_fp32(loaded)
