"""Run the AHN training recipe on a Qwen2.5-3B-shaped model (random bf16 weights) on one GPU.

What it measures, into ``leaderboards/perf/ahn_train_3b_shape.{json,md}``:
  1. a few real optimisation steps of the recipe (KL self-distillation, random windows from the paper's lists,
     gradient checkpointing on, bf16 autocast, AHN-GDN by default) at 24,576 tokens: peak memory, step time and
     tokens/s (the first step includes compilation and is reported apart);
  2. one micro-step's AHN gradients through the fast path (fla kernels) against the PyTorch reference path
     (``backend="reference"``) on the same weights, batch and window: relative error of the whole gradient
     vector and per parameter kind (bf16 tolerance: <= 2e-2). The comparison runs at ``--check-len`` tokens
     (default 4,096: the reference recurrence is slow at 24k), with output maps set to small random values so that
     every AHN parameter receives a gradient (at init only ``o_proj`` does).

Weights are random, so the loss values mean nothing; the shapes, memory and speed are the real ones.
Usage (GPU): ``python -m bench.gpu_train_3b_shape [--seq-len 24576 --steps 4 --check-len 4096]``.
On CPU it runs a toy-sized version (``--tiny``) so the script itself can be tested anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 512}


def qwen_3b_config(tiny: bool):
    from transformers import Qwen2Config

    from baselines.model_configs import hf_config

    cfg = hf_config("3B")
    if tiny:
        cfg.update(TINY)
    cfg = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "transformers_version",
                                                     "torch_dtype")}
    return Qwen2Config(**cfg)


class RandomTokens:
    """Endless plain-text source of uniform random ids (labels = ids): every position counts."""

    size = None

    def __init__(self, vocab: int, length: int, seed: int = 0) -> None:
        self.vocab, self.length, self.seed = vocab, length, seed

    def get(self, index: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        ids = torch.randint(0, self.vocab, (self.length,), generator=g).tolist()
        return {"input_ids": ids, "labels": ids}

    def describe(self) -> dict:
        return {"source": "random-tokens", "length": self.length}


def grad_check(model, cell: str, length: int, seed: int, amp) -> dict:
    """One micro-step's AHN gradients: the fast path and the reference path under the run's precision, and the
    reference path in fp32 (no autocast, fp32 weights) as the yardstick.

    In a 36-layer model two bf16 computations of the same gradient differ by bf16 rounding compounded through
    the layers, whatever the kernels, so the fast path's error is read against the fp32 reference beside the
    bf16 reference's own error there: the fast path passes when it is within ``tolerance`` outright, or no
    further from fp32 than 1.5x the bf16 reference (it adds nothing beyond bf16's own rounding)."""
    from ahn.train.config import TrainConfig
    from ahn.train.loop import _set_gc, freeze_all_but_ahn, micro_step
    from ahn.train.windows import Draw
    from baselines import attach, make_method

    device = next(model.parameters()).device
    sinks, total = (128, 1024) if length >= 4096 else (4, 32)
    draw = Draw(sinks, total - sinks)
    method = make_method("ahn", cell=cell, sinks=draw.sinks, window=draw.window, backend="auto")
    torch.manual_seed(seed)
    method.blocks = method.build_blocks(model).to(device=device, dtype=torch.float32)
    with torch.no_grad():
        for blk in method.blocks:
            blk.fn.o_proj.weight.normal_(0.0, 0.02)
    ids = torch.tensor([RandomTokens(model.config.vocab_size, length, seed + 7).get(0)["input_ids"]], device=device)
    cfg = TrainConfig(base="random", cell=cell, loss_chunk=2048)
    grads: dict[str, dict] = {}
    losses: dict[str, float] = {}
    timings = {}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    runs = [("fast", "auto", amp), ("reference", "reference", amp)]
    if amp is not None:
        runs.append(("reference_fp32", "reference", None))
    model_dtype = next(model.parameters()).dtype
    rope = {name: buf.clone() for name, buf in model.named_buffers() if "inv_freq" in name}
    with attach(model, method):
        params = freeze_all_but_ahn(model)
        _set_gc(model, True)
        for label, backend, run_amp in runs:
            if run_amp is None and model_dtype != torch.float32:
                model.float()  # bf16 -> fp32 is exact: the same weights, computed in fp32
            method.backend = backend
            for p in params.values():
                p.grad = None
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
            loss, n = micro_step(model, method, ids, ids, draw, cfg, run_amp, 1.0, gc=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            timings[label] = time.time() - t0
            grads[label] = {k: p.grad.detach().float().clone() for k, p in params.items() if p.grad is not None}
            losses[label] = loss
        _set_gc(model, False)
    if next(model.parameters()).dtype != model_dtype:  # back to the run's weights (exact), RoPE buffers as they were
        model.to(model_dtype)
        for name, buf in rope.items():
            owner, attr = model.get_submodule(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]
            setattr(owner, attr, buf)
    for n_, p in model.named_parameters():
        p.requires_grad_(flags.get(n_, p.requires_grad))

    def rel(a: str, b: str, keys) -> float:
        num = math.sqrt(sum(float((grads[a][k] - grads[b][k]).pow(2).sum()) for k in keys))
        den = math.sqrt(sum(float(grads[b][k].pow(2).sum()) for k in keys))
        return num / den if den > 0 else float("nan")

    kinds: dict[str, list[str]] = {}
    for k in grads["fast"]:
        kinds.setdefault(k.split(".ahn.fn.")[-1], []).append(k)
    from ahn.ops import fla_backend

    why_not = fla_backend.import_error() if device.type == "cuda" else "no CUDA device"
    every = list(grads["fast"])
    out = {
        "length": length, "sinks": draw.sinks, "window": draw.window, "cell": cell,
        "fast_backend": "fla" if why_not is None else f"reference ({why_not})",
        "losses": losses, "seconds": timings,
        "rel_err_all": rel("fast", "reference", every),
        "rel_err_by_param": {k: rel("fast", "reference", v) for k, v in sorted(kinds.items())},
    }
    if "reference_fp32" in grads:
        out.update({
            "rel_err_fast_vs_fp32": rel("fast", "reference_fp32", every),
            "rel_err_reference_vs_fp32": rel("reference", "reference_fp32", every),
            "rel_err_fast_vs_fp32_by_param": {k: rel("fast", "reference_fp32", v) for k, v in sorted(kinds.items())},
            "rel_err_reference_vs_fp32_by_param": {k: rel("reference", "reference_fp32", v)
                                                   for k, v in sorted(kinds.items())},
        })
    return out


def check_passes(check: dict, tolerance: float) -> bool:
    """Within ``tolerance`` of the reference, or no further from the fp32 reference than 1.5x bf16's own error."""
    if check["rel_err_all"] <= tolerance:
        return True
    if "rel_err_fast_vs_fp32" in check:
        return check["rel_err_fast_vs_fp32"] <= 1.5 * check["rel_err_reference_vs_fp32"]
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seq-len", type=int, default=24576)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--check-len", type=int, default=4096, help="sequence length of the fast-vs-reference check")
    ap.add_argument("--cell", default="gdn", choices=("gdn", "dn", "mamba2"))
    ap.add_argument("--check-cell", default=None, choices=("gdn", "dn", "mamba2"),
                    help="cell of the gradient check (default: --cell). fla 0.6.0 has no gated backward on Hopper "
                         "with Triton < 3.7.1, so there only dn's fast path differs from the reference")
    ap.add_argument("--out", default=str(REPO / "leaderboards" / "perf"))
    ap.add_argument("--tiny", action="store_true", help="toy model sizes (CPU smoke test)")
    ap.add_argument("--tolerance", type=float, default=2e-2)
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--check-only", action="store_true", help="no training steps: only the gradient check")
    args = ap.parse_args(argv)

    from transformers import AutoModelForCausalLM

    from ahn.train.config import TrainConfig, WindowConfig
    from ahn.train.loop import train

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    tiny = args.tiny or not cuda
    seq_len = args.seq_len if not tiny else min(args.seq_len, 512)
    check_len = args.check_len if not tiny else min(args.check_len, 128)
    config = qwen_3b_config(tiny)
    t0 = time.time()
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if cuda else torch.float32,
                                                 attn_implementation="sdpa")
    model.eval()
    build_s = time.time() - t0
    n_base = sum(p.numel() for p in model.parameters())
    print(f"[3b-shape] model {'tiny' if tiny else 'Qwen2.5-3B shape'}: {n_base / 1e9:.3f}B params on {device}, "
          f"built in {build_s:.1f}s", flush=True)

    window = WindowConfig(mode="random") if not tiny else WindowConfig(
        mode="random", window_candidates=[32, 64, 128, 256], sink_candidates=[0, 4, 8, 16])
    cfg = TrainConfig(base="random-qwen2.5-3b-shape", cell=args.cell, output_dir=str(REPO / "runs" / "perf-3b"),
                      window=window, steps=args.steps, micro_batch_size=1, grad_accum=1,
                      gradient_checkpointing=True, save_every=0, resume="never", log_every=1, loss_chunk=2048)
    cfg.optim.warmup_ratio = 0.0
    source = RandomTokens(config.vocab_size, seq_len, seed=0)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    hist = [] if args.check_only else train(cfg, model=model, source=source).history
    # FlexAttention compiles once per (sinks, window) pair (baselines/flex.py closes over them as Python ints),
    # so a step that meets a new pair includes a compilation: steady numbers use the other steps when any.
    seen: set = set()
    for h in hist:
        pair = tuple(h["windows"][0]) if h["windows"] else None
        h["new_window_pair"] = pair not in seen
        seen.add(pair)
    repeat = [h for h in hist if not h["new_window_pair"]]
    steady = repeat or (hist[1:] if len(hist) > 1 else hist)
    report = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__, "tiny": tiny, "seq_len": seq_len, "cell": args.cell, "steps": len(hist),
        "base_parameters": n_base,
        "peak_mem_gib": (torch.cuda.max_memory_allocated() / 2**30) if cuda else None,
        "first_step_s": hist[0]["step_s"] if hist else None,
        "step_s": [h["step_s"] for h in hist], "steady_from": "repeated window pairs" if repeat else
        "steps after the first (each met a new window pair: includes FlexAttention compilation)",
        "steady_step_s": sum(h["step_s"] for h in steady) / len(steady) if steady else None,
        "steady_tokens_per_s": sum(h["tokens"] for h in steady) / sum(h["step_s"] for h in steady) if steady else None,
        "windows": [h["windows"][0] for h in hist], "losses": [h["loss"] for h in hist],
        "grad_norms": [h["grad_norm"] for h in hist],
        "settings": {"gradient_checkpointing": True, "autocast": "bf16" if cuda else "fp32",
                     "loss": "kl", "window_mode": "random (paper candidates)" if not tiny else "random (tiny)"},
    }
    print(f"[3b-shape] steps: {json.dumps(report, default=str)}", flush=True)
    ok = True
    if not args.skip_check:
        amp = torch.bfloat16 if cuda else None
        check = grad_check(model, args.check_cell or args.cell, check_len, seed=1, amp=amp)
        check["tolerance"] = args.tolerance
        check["pass"] = check_passes(check, args.tolerance)
        ok = check["pass"]
        report["grad_check"] = check
        print(f"[3b-shape] fast vs reference AHN gradients at {check_len} tokens: rel err {check['rel_err_all']:.3e} "
              f"(by param: { {k: f'{v:.2e}' for k, v in check['rel_err_by_param'].items()} }); against fp32: fast "
              f"{check.get('rel_err_fast_vs_fp32', float('nan')):.3e}, bf16 reference "
              f"{check.get('rel_err_reference_vs_fp32', float('nan')):.3e}: {'PASS' if ok else 'FAIL'}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "ahn_train_3b_shape" + ("_tiny" if tiny else "") + ("_check" if args.check_only else "")
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / f"{name}.md").write_text(markdown(report))
    print(f"[3b-shape] wrote {out / name}.json and .md", flush=True)
    return 0 if ok else 1


def markdown(r: dict) -> str:
    lines = [] if not r["steps"] else [
        "# AHN training on a Qwen2.5-3B-shaped model (random weights)", "",
        f"Device: {r['device']}; torch {r['torch']}; AHN-{r['cell'].upper()}; {r['seq_len']:,} tokens per sequence; "
        f"gradient checkpointing on; autocast {r['settings']['autocast']}; windows {r['settings']['window_mode']}.",
        "",
        "| quantity | value |", "|---|---|",
        f"| base parameters | {r['base_parameters']:,} |",
        f"| peak GPU memory | {r['peak_mem_gib']:.1f} GiB |" if r["peak_mem_gib"] is not None else "| peak memory | n/a (CPU) |",
        f"| first step (with compilation) | {r['first_step_s']:.1f} s |",
        f"| steady step ({r['steady_from']}) | {r['steady_step_s']:.2f} s |",
        f"| all step times | {', '.join(f'{t:.1f}' for t in r['step_s'])} s |",
        f"| steady throughput | {r['steady_tokens_per_s']:,.0f} tokens/s |",
        f"| windows drawn (sinks, window) | {r['windows']} |",
    ]
    c = r.get("grad_check")
    if c:
        if not lines:
            lines = ["# AHN gradient check on a Qwen2.5-3B-shaped model (random weights)", "",
                     f"Device: {r['device']}; torch {r['torch']}; gradient checkpointing on; autocast "
                     f"{r['settings']['autocast']}."]
        lines += ["", f"Fast ({c['fast_backend']}) vs reference AHN-{c['cell'].upper()} gradients, one micro-step at "
                  f"{c['length']:,} tokens (sinks {c['sinks']}, window {c['window']}, random small output maps): "
                  f"relative error **{c['rel_err_all']:.2e}** (tolerance {c['tolerance']:g}).", ""]
        if "rel_err_fast_vs_fp32" in c:
            lines += ["Against the reference path in fp32 (fp32 weights, no autocast), the bf16 error each path "
                      f"carries: fast **{c['rel_err_fast_vs_fp32']:.2e}**, reference "
                      f"**{c['rel_err_reference_vs_fp32']:.2e}**. Pass rule: within the tolerance, or no further "
                      f"from fp32 than 1.5x the bf16 reference: **{'pass' if c['pass'] else 'FAIL'}**.", "",
                      "| parameter | fast vs reference | fast vs fp32 | reference vs fp32 |", "|---|---:|---:|---:|"]
            lines += [f"| {k} | {v:.2e} | {c['rel_err_fast_vs_fp32_by_param'][k]:.2e} | "
                      f"{c['rel_err_reference_vs_fp32_by_param'][k]:.2e} |" for k, v in c["rel_err_by_param"].items()]
        else:
            lines += [f"Result: **{'pass' if c['pass'] else 'FAIL'}**.", "", "| parameter | rel. error |", "|---|---|"]
            lines += [f"| {k} | {v:.2e} |" for k, v in c["rel_err_by_param"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
