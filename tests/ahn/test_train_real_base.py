"""The real-base recipe on the CPU: the fused KL against plain autograd, and a few training steps of the coder
configs' settings on a truncated copy of Qwen2.5-Coder-0.5B-Instruct (or a random Qwen2 with its head layout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ahn.train.config import load_config
from ahn.train.data import ListSource
from ahn.train.loop import train
from ahn.train.loss import distill_loss, fused_kl

CODER_COPY = "qwen2.5-coder-0.5b"  # the `fetch-model` name of the real base's local copy
CONFIGS = Path(__file__).resolve().parents[2] / "ahn" / "train" / "configs"


def test_fused_kl_matches_autograd_over_full_logits():
    torch.manual_seed(0)
    n, d, v = 37, 16, 211
    head = torch.nn.Linear(d, v, bias=True).double()
    h_s = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    h_t = torch.randn(n, d, dtype=torch.float64)
    ref = F.kl_div(F.log_softmax(head(h_s), -1), F.log_softmax(head(h_t), -1), log_target=True,
                   reduction="sum")
    (g_ref,) = torch.autograd.grad(ref, h_s)
    got = fused_kl(h_s, h_t, head, chunk=8)  # chunks that do not divide the rows
    (g_got,) = torch.autograd.grad(got * 3.0, h_s)
    # fp64 in, fp64 throughout: equal to rounding (37 x 211 terms of size ~1 at eps 2.2e-16)
    assert torch.allclose(got, ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(g_got, 3.0 * g_ref, rtol=1e-10, atol=1e-12)
    assert head.weight.grad is None  # the frozen head gets nothing


def test_fused_and_checkpointed_distill_loss_agree():
    torch.manual_seed(1)
    head = torch.nn.Linear(8, 50, bias=False).double()
    s = torch.randn(2, 12, 8, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 12, 8, dtype=torch.float64)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, 5:] = True
    a, na = distill_loss(s, t, head, mask, chunk=4)
    (ga,) = torch.autograd.grad(a, s)
    b, nb = distill_loss(s, t, head, mask, chunk=4, kl_impl="fused")
    (gb,) = torch.autograd.grad(b, s)
    assert na == nb == 14
    # the checkpointed chunks take the softmax in fp32 (`_kl_chunk`), the fused one in the input's fp64
    assert torch.allclose(a.double(), b, rtol=1e-6) and torch.allclose(ga, gb, rtol=1e-5, atol=1e-7)


def _coder_copy() -> Path | None:
    """The real base's bf16 folder: AHN_HARNESS_CODER_BASE, the built local copy, or this machine's converted copy."""
    candidates = [Path(os.environ["AHN_HARNESS_CODER_BASE"])] if os.environ.get("AHN_HARNESS_CODER_BASE") else []
    try:
        from harness import local_models

        built = local_models.built_copy(CODER_COPY)
        candidates += [Path(built)] if built else []
    except ImportError:  # a tree without fetch-model
        pass
    return next((c for c in candidates if (c / "config.json").is_file() and any(c.glob("*.safetensors"))), None)


def _base_and_rows(seq: int):
    """Two layers of the real base and rows of real Python source, or a random Qwen2 of the same head layout
    (14 query heads, 2 KV heads, head dim 64, hidden 896) and random ids when the copy is absent."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    folder = _coder_copy()
    if folder is not None:
        from safetensors import safe_open

        config = AutoConfig.from_pretrained(folder)
        config.num_hidden_layers = 2
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
        wanted = model.state_dict()
        loaded = set()
        for path in sorted(folder.glob("*.safetensors")):  # only the tensors of the first two layers
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    if key in wanted:
                        wanted[key].copy_(f.get_tensor(key).float())
                        loaded.add(key)
        tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
        assert set(wanted) - loaded <= tied, sorted(set(wanted) - loaded)[:5]
        from ahn.train.pysource import Exclusions, PythonSourceCorpus

        tok = AutoTokenizer.from_pretrained(folder)
        corpus = PythonSourceCorpus(tok, seq, 1, roots=["site:ahn"], min_tokens=seq,
                                    exclusions=Exclusions(frozenset(), frozenset()))
        rows = [corpus.get(0)["input_ids"]]
        return model.eval(), rows, "truncated real base"
    config = Qwen2Config(hidden_size=896, intermediate_size=256, num_hidden_layers=2, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=1000, max_position_embeddings=4096, tie_word_embeddings=True,
                         initializer_range=0.1)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    g = torch.Generator().manual_seed(0)
    return model, torch.randint(0, 1000, (1, seq), generator=g).tolist(), "random Qwen2 (coder head layout)"


@pytest.mark.parametrize("cell", ["gdn"])
def test_real_base_recipe_learns_and_moves_only_ahn(tmp_path, cell):
    seq = 64
    model, rows, what = _base_and_rows(seq)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # the coder config's recipe (fused KL, no checkpointing, fixed sinks + window) at a CPU-sized window
    cfg = load_config(CONFIGS / f"coder-0.5b-{cell}.json", [
        "base=test", f"output_dir={tmp_path / 'out'}", "window.sinks=4", "window.window=12", "steps=6",
        "grad_accum=1", "micro_batch_size=1", "optim.lr=1e-3", "optim.warmup_ratio=0", "optim.schedule=constant",
        "save_every=0", "data.shuffle=false", "device=cpu", "precision=fp32", "loss_chunk=32"])
    assert cfg.kl_impl == "fused" and not cfg.gradient_checkpointing
    src = ListSource([{"input_ids": r, "labels": r} for r in rows])
    res = train(cfg, model=model, source=src, echo=lambda _m: None)
    kl = [h["kl"] for h in res.history]
    assert len(kl) == 6 and kl[-1] < 0.9 * kl[0], (what, kl)
    after = model.state_dict()
    assert set(after) == set(before)
    for k in before:
        assert torch.equal(before[k], after[k]), k  # every base parameter bit for bit
    moved = [n for n, p in res.method.blocks.named_parameters() if "o_proj" in n and p.abs().sum() > 0]
    assert len(moved) == 2  # every layer's AHN output map left zero


def _count_passes(cfg, seq: int = 48) -> tuple[int, int]:
    """Matmuls producing MLP-wide rows (gate and up projections: 2 per layer forward; the down projection's input
    gradient: 1 per layer backward) and vocabulary-wide rows (logits), in one micro-step of a 2-layer model."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from transformers import AutoModelForCausalLM, Qwen2Config

    from ahn.train.loop import _set_gc, freeze_all_but_ahn, micro_step
    from ahn.train.windows import Draw
    from baselines import attach, make_method

    vocab, wide = 1000, 128
    config = Qwen2Config(hidden_size=64, intermediate_size=wide, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=vocab)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    counts = {vocab: 0, wide: 0}

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm) and out.shape[-1] in counts:
                counts[out.shape[-1]] += 1
            return out

    method = make_method("ahn", cell="gdn", sinks=2, window=14)
    ids = torch.randint(0, vocab, (1, seq))
    with attach(model, method):
        freeze_all_but_ahn(model)
        _set_gc(model, cfg.gradient_checkpointing)
        with Count():
            micro_step(model, method, ids, ids, Draw(2, 14), cfg, None, 1.0, cfg.gradient_checkpointing)
        _set_gc(model, False)
    return counts[wide], counts[vocab]


def test_new_step_runs_each_layer_and_each_logit_once():
    """Counted on the CPU: the earlier settings run every layer three times (teacher, student, checkpoint
    recomputation) and each logit twice (KL chunks recomputed in backward); the coder configs' settings run every
    layer twice (teacher, student) and compute each logit once."""
    old = load_config(None, ["base=x", "gradient_checkpointing=true", "kl_impl=checkpoint", "loss_chunk=8"])
    new = load_config(CONFIGS / "coder-0.5b-gdn.json", ["loss_chunk=8"])
    chunks = -(-(48 - 16) // 8)  # loss positions t >= 16, in chunks of 8
    layers = 2
    # per layer: (teacher + student [+ recomputed student]) x 2 MLP matmuls + 1 input gradient
    assert _count_passes(old) == (layers * (3 * 2 + 1), 2 * 2 * chunks)
    assert _count_passes(new) == (layers * (2 * 2 + 1), 2 * chunks)
