"""Measure the AHN training step on a real base, then train AHN cells on it: one command, results to ``--out``.

    python -m bench.gpu_train_real --base qwen2.5-coder-0.5b --cells gdn --minutes 4.5 --out $OUT

1. **Speed** (``--bench``, default on): the training step under the earlier recipe's settings and under the
   coder configs' (``ahn/train/configs/coder-0.5b-<cell>.json``), in the same process on the same weights and
   rows: median step time over ``--bench-steps`` steps after ``--bench-warmup`` (with min and max), tokens/s,
   model FLOP utilisation (step FLOPs from ``ahn.train.step_cost`` over a measured bf16 matmul ceiling) and peak
   memory. Written to ``bench.json`` and ``bench.md`` as each setting finishes.
2. **Training**: each cell of ``--cells`` in turn, for ``--minutes`` of training (its schedule's length set from
   a timed calibration step so that the cosine ends when the time does), with resumable checkpoints about every
   ``--save-minutes``; the released-format AHN weights, ``train_log.jsonl`` (one line per update, flushed),
   ``train_summary.json``, ``data_manifest.json`` (every source file used, with its sha256) and ``loss_curve.png``
   in ``--out/<cell>/``. ``--wall-minutes`` bounds the whole command: training stops (and saves) before it.
   ``--resume DIR`` continues the cells from an earlier command's ``--out`` (its checkpoints), with the same
   schedule.

``--device cpu --tiny`` runs all of it at a toy shape (a random 2-layer Qwen2, bytes as tokens) on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]

CONFIGS = REPO / "ahn" / "train" / "configs"
T0 = time.time()


def log(msg: str) -> None:
    print(f"[train-real {time.time() - T0:6.1f}s] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------------------
# settings compared by the speed measurement (config overrides on top of the cell's coder config)

SETTINGS: dict[str, dict[str, Any]] = {
    # the recipe as first run on this base: 8,192-token rows, 2 a micro-batch, 128 + 1,920, checkpointed
    # layers and KL chunks, the PyTorch reference cells (fla refused the gated backward there)
    "old": {"data.seq_len": 8192, "micro_batch_size": 2, "window.sinks": 128, "window.window": 1920,
            "gradient_checkpointing": True, "kl_impl": "checkpoint", "backend": "reference"},
    # the same with fla's kernels (where their backward runs): what the kernels alone bring
    "old-fla": {"data.seq_len": 8192, "micro_batch_size": 2, "window.sinks": 128, "window.window": 1920,
                "gradient_checkpointing": True, "kl_impl": "checkpoint", "backend": "auto"},
    # the coder configs as written
    "new": {},
    # the coder configs with two rows a micro-batch
    "new-mb2": {"micro_batch_size": 2},
    # the coder configs' settings at 8,192-token rows, two a micro-batch
    "new-8k": {"data.seq_len": 8192, "micro_batch_size": 2},
}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 4096}


class ByteTokenizer:
    """Bytes as tokens (the tiny path needs no tokenizer files); 256 ends a file."""

    eos_token_id = 256
    pad_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode("utf-8"))


def tiny_scale(setting: dict[str, Any]) -> dict[str, Any]:
    """A setting at the toy shape: lengths and windows divided by 64."""
    out = dict(setting)
    for key in ("data.seq_len", "window.sinks", "window.window"):
        if key in out:
            out[key] = max(1, out[key] // 64)
    return out


def tiny_overrides() -> dict[str, Any]:
    return {"data.seq_len": 256, "window.sinks": 2, "window.window": 62, "loss_chunk": 64, "data.max_samples": 16}


# ------------------------------------------------------------------------------------------------------------
# device helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, n: int) -> dict[str, float]:
    """Measured dense matmul rate (TFLOP/s): a square n×n×n product in bf16 (fp32 on the CPU), median of 10."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t)
    del a, b
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "tflops": 2 * n**3 / statistics.median(times) / 1e12}


# ------------------------------------------------------------------------------------------------------------
# configs, model, data


EXTRA: list[str] = []  # --set key=value, on top of every config this command builds (a setting's own keys win)


def cell_config(cell: str, overrides: dict[str, Any], tiny: bool):
    from ahn.train.config import load_config, parse_override

    pairs = dict(tiny_overrides()) if tiny else {}
    pairs.update(dict(parse_override(o) for o in EXTRA))
    pairs.update(overrides)
    return load_config(CONFIGS / f"coder-0.5b-{cell}.json", [f"{k}={json.dumps(v)}" for k, v in pairs.items()])


def load_tokenizer(args):
    from transformers import AutoTokenizer

    return ByteTokenizer() if args.tiny else AutoTokenizer.from_pretrained(args.base)


def load_model(args, device: torch.device):
    from transformers import AutoModelForCausalLM, Qwen2Config

    if args.tiny:
        torch.manual_seed(0)
        config = Qwen2Config(**TINY, initializer_range=0.1)
        return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").to(device).eval()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.base, dtype=dtype, attn_implementation="sdpa")
    from baselines.precision import check_rope_fp32

    check_rope_fp32(model)
    for p in model.parameters():  # the base is frozen everywhere, and kept in its own dtype (no fp32 copy)
        p.requires_grad_(False)
    return model.to(device).eval()


def build_corpus(cfg, tokenizer, tiny: bool):
    from ahn.train.pysource import Exclusions, PythonSourceCorpus, parse_roots

    exclusions = None
    roots = parse_roots(cfg.data.path)
    if tiny:  # the toy run trains nothing anyone evaluates: this repository's own package, no evaluation check
        exclusions, roots = Exclusions(frozenset(), frozenset()), ["site:ahn"]
    return PythonSourceCorpus(tokenizer, cfg.data.seq_len, cfg.data.max_samples, roots=roots,
                              min_tokens=cfg.data.filter_len if not tiny else 256, seed=cfg.seed,
                              exclusions=exclusions, progress=None)


class Prefix:
    """The first ``length`` tokens of each row of a source (the shorter settings read the same rows)."""

    def __init__(self, source, length: int) -> None:
        self.source, self.length, self.size = source, length, source.size

    def get(self, index: int) -> dict:
        ex = self.source.get(index)
        return {k: v[: self.length] for k, v in ex.items()}

    def describe(self) -> dict:
        return {**self.source.describe(), "prefix": self.length}


# ------------------------------------------------------------------------------------------------------------
# 1. the step's speed


def time_steps(model, cfg, source, device, steps: int, warmup: int) -> dict[str, Any]:
    """``warmup + steps`` full optimiser steps of ``cfg`` on fresh AHN cells; times of the last ``steps``."""
    from ahn.train.data import MicroBatches
    from ahn.train.loop import (
        _set_gc,
        autocast_dtype,
        build_optimizer,
        check_trainable,
        freeze_all_but_ahn,
        micro_step,
    )
    from ahn.train.windows import Draw
    from baselines import attach, make_method

    amp = autocast_dtype(cfg, device)
    draw = Draw(cfg.window.sinks, cfg.window.window)
    method = make_method("ahn", cell=cfg.cell, backend=cfg.backend, sinks=draw.sinks, window=draw.window)
    method.blocks = method.build_blocks(model).to(device=device, dtype=torch.float32)
    batches = MicroBatches(Prefix(source, cfg.data.seq_len), cfg.micro_batch_size, 0, seed=cfg.seed, shuffle=False)
    times, losses = [], []
    with attach(model, method):
        params = freeze_all_but_ahn(model)
        optimizer = build_optimizer(params, cfg)
        check_trainable(model, params, optimizer)
        _set_gc(model, cfg.gradient_checkpointing)
        try:
            for i in range(warmup + steps):
                if i == warmup and device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                sync(device)
                t = time.perf_counter()
                for a in range(cfg.grad_accum):
                    batch = batches(i * cfg.grad_accum + a)
                    loss, _ = micro_step(model, method, batch.input_ids.to(device), batch.labels.to(device), draw,
                                         cfg, amp, 1.0 / cfg.grad_accum, cfg.gradient_checkpointing)
                torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.optim.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                sync(device)
                dt = time.perf_counter() - t
                log(f"  step {i + 1}/{warmup + steps} {'(warm-up) ' if i < warmup else ''}{dt:.3f}s kl {loss:.4f}")
                (times if i >= warmup else []).append(dt)
                losses.append(loss)
        finally:
            if cfg.gradient_checkpointing:
                _set_gc(model, False)
    from ahn.ops import dispatch

    probe = torch.zeros(1, 80, 1, 4, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
                        requires_grad=True)
    gate = probe[..., 0]
    op, gates = {"gdn": ("delta_rule", (gate, gate)), "dn": ("delta_rule", (gate, None)),
                 "mamba2": ("scalar_decay", (gate,))}[cfg.cell]
    gated = dispatch.resolve_backend(cfg.backend, op, probe, probe, probe, *gates)
    return {"times": times, "losses": losses, "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30
            if device.type == "cuda" else None, "cell_backend_for_gradients": gated}


def bench(args, model, source, device, ceiling: dict, out: Path) -> dict[str, Any]:
    from ahn.train.step_cost import training_step_flops
    from baselines.model_configs import ModelDims

    dims = ModelDims.from_hf_config(model.config)
    results: dict[str, Any] = {"device": device_name(device), "torch": torch.__version__, "ceiling": ceiling,
                               "base": "tiny random Qwen2" if args.tiny else str(args.base), "settings": {}}
    for name in args.bench:
        setting = tiny_scale(SETTINGS[name]) if args.tiny else SETTINGS[name]
        # one micro-batch an update: the same work per token, and the slow settings' steps stay short
        cfg = cell_config(args.bench_cell, {**setting, "grad_accum": 1}, args.tiny)
        log(f"bench {name}: {json.dumps(setting)}")
        try:
            r = time_steps(model, cfg, source, device, args.bench_steps, args.bench_warmup)
        except torch.OutOfMemoryError as e:
            r = {"error": f"out of memory: {str(e).splitlines()[0][:200]}"}
            log(f"bench {name}: {r['error']}")
        except Exception as e:  # a kernel that fails here (e.g. a JIT build): recorded, the other settings still run
            import traceback

            traceback.print_exc()
            r = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
            log(f"bench {name}: failed: {r['error']}")
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        seq, mb = cfg.data.seq_len, cfg.micro_batch_size * cfg.grad_accum
        flops = training_step_flops(dims, cfg.cell, seq, mb, cfg.window.sinks, cfg.window.window)
        row = {"setting": setting, "cell": cfg.cell, "seq_len": seq, "micro_batch": cfg.micro_batch_size,
               "grad_accum": cfg.grad_accum, "sinks": cfg.window.sinks, "window": cfg.window.window,
               "gradient_checkpointing": cfg.gradient_checkpointing, "kl_impl": cfg.kl_impl,
               "backend": cfg.backend, "step_flops": flops, **r}
        if r.get("times"):
            med = statistics.median(r["times"])
            row.update({"step_s_median": med, "step_s_min": min(r["times"]), "step_s_max": max(r["times"]),
                        "tokens_per_s": seq * mb / med, "tflops": flops["total"] / med / 1e12,
                        "mfu": flops["total"] / med / 1e12 / ceiling["tflops"]})
            log(f"bench {name}: {row['tokens_per_s']:,.0f} tokens/s (median of {len(r['times'])} steps, "
                f"{row['step_s_min']:.3f}-{row['step_s_max']:.3f}s), {row['tflops']:.1f} TFLOP/s = "
                f"{row['mfu']:.1%} of the measured ceiling, peak {row.get('peak_mem_gib') or 0:.1f} GiB, cell "
                f"gradients through {r['cell_backend_for_gradients']}")
        results["settings"][name] = row
        write_bench(results, out)
    return results


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def write_bench(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    c = results["ceiling"]
    lines = [f"Device: {results['device']}; torch {results['torch']}; base {results['base']}; measured matmul "
             f"ceiling {c['tflops']:.3g} TFLOP/s ({c['n']}³ {c['dtype']}).", "",
             "| setting | rows × tokens | sinks + window | checkpointing | KL | cell gradients | tokens/s (median; "
             "min–max step) | TFLOP/s | MFU | peak memory |", "|---|---|---|---|---|---|---:|---:|---:|---:|"]
    old = results["settings"].get("old", {}).get("tokens_per_s")
    for name, r in results["settings"].items():
        if "tokens_per_s" not in r:
            lines.append(f"| {name} | {r['micro_batch']} × {r['seq_len']:,} | {r['sinks']} + {r['window']:,} | "
                         f"{'on' if r['gradient_checkpointing'] else 'off'} | {r['kl_impl']} | {r['backend']} | "
                         f"{r.get('error', 'no steps')} | | | |")
            continue
        gain = f" ({r['tokens_per_s'] / old:.1f}×)" if old and name != "old" else ""
        peak = f"{r['peak_mem_gib']:.1f} GiB" if r.get("peak_mem_gib") is not None else "n/a"
        lines.append(
            f"| {name} | {r['micro_batch']} × {r['seq_len']:,} | {r['sinks']} + {r['window']:,} | "
            f"{'on' if r['gradient_checkpointing'] else 'off'} | {r['kl_impl']} | {r['cell_backend_for_gradients']} | "
            f"{r['tokens_per_s']:,.0f}{gain} ({r['step_s_min']:.2f}–{r['step_s_max']:.2f} s) | {r['tflops']:.1f} | "
            f"{r['mfu']:.1%} | {peak} |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------------------
# 2. training


def plot_curve(log_path: Path, png: Path, title: str) -> Path | None:
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()] if log_path.exists() \
        else []
    rows = [r for r in rows if r.get("loss") is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    tokens, total = [], 0
    for r in rows:
        total += r["tokens"]
        tokens.append(total / 1e6)
    ax.plot(tokens, [r["loss"] for r in rows], lw=1, color="0.6", label="per update")
    k = max(1, len(rows) // 20)
    smooth = [statistics.fmean(r["loss"] for r in rows[max(0, i - k + 1): i + 1]) for i in range(len(rows))]
    ax.plot(tokens, smooth, lw=2, color="C0", label=f"mean of {k}")
    ax.set_yscale("log")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("KL(teacher ‖ student) per position")
    ax.set_title(title)
    ax.legend(frameon=False)
    fig.savefig(png, dpi=120)
    return png


def calibrate(model, cfg, source, device) -> float:
    """Seconds of one optimiser step of ``cfg`` (a warm-up step that also compiles, then one timed), on
    throwaway cells: the training run starts from fresh ones."""
    r = time_steps(model, cfg, source, device, steps=1, warmup=1)
    return r["times"][0]


def saved_steps(cell_dir: Path) -> int | None:
    """The schedule length of the run whose checkpoints are in ``cell_dir`` (None: none there)."""
    from ahn.train.loop import LATEST_NAME, STATE_NAME, _load_trainer_state

    latest = cell_dir / "checkpoints" / LATEST_NAME
    if not latest.is_file():
        return None
    state = _load_trainer_state(cell_dir / "checkpoints" / latest.read_text().strip() / STATE_NAME)
    return int(state["config"]["steps"])


def train_cell(args, cell: str, model, tokenizer, source, device, out: Path, step_s: float | None) -> dict:
    from ahn.train.loop import train

    cell_dir = out / cell
    if args.resume is not None and (args.resume / cell / "checkpoints").is_dir() and not \
            (cell_dir / "checkpoints").is_dir():
        shutil.copytree(args.resume / cell, cell_dir, dirs_exist_ok=True)
        log(f"{cell}: continuing from {args.resume / cell}")
    remaining = args.wall_minutes * 60 - (time.time() - T0) - args.margin_s
    budget = min(args.minutes * 60, remaining)
    if budget <= 10:
        log(f"{cell}: no time left within --wall-minutes {args.wall_minutes}; skipped")
        return {"cell": cell, "skipped": "no time left"}
    base_cfg = cell_config(cell, {}, args.tiny)
    steps = saved_steps(cell_dir)
    if steps is None:
        if args.steps:
            steps = args.steps
        else:
            if step_s is None:
                log(f"{cell}: calibrating the step time")
                step_s = calibrate(model, base_cfg, source, device)
                budget = min(args.minutes * 60, args.wall_minutes * 60 - (time.time() - T0) - args.margin_s)
            steps = max(2, int(budget / step_s))
        log(f"{cell}: schedule of {steps} updates ({budget:.0f} s at {step_s or float('nan'):.2f} s an update)")
    save_every = max(1, int(args.save_minutes * 60 / step_s)) if step_s else base_cfg.save_every
    overrides = {"base": base_cfg.base if args.tiny else str(args.base), "output_dir": str(cell_dir),
                 "steps": steps, "time_budget_s": budget, "save_every": save_every, "resume": "auto", "log_every": 1}
    if args.tiny:
        overrides["base"] = "tiny"
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    cfg = cell_config(cell, overrides, args.tiny)
    t = time.time()
    result = train(cfg, model=model, tokenizer=tokenizer, source=source, echo=log)
    wall = time.time() - t
    source.write_manifest(cell_dir / "data_manifest.json")
    png = plot_curve(cell_dir / "train_log.jsonl", cell_dir / "loss_curve.png",
                     f"AHN-{cell.upper()} on {'a tiny random Qwen2' if args.tiny else Path(args.base).name}: "
                     f"{cfg.window.sinks} sinks + {cfg.window.window:,} window, rows of {cfg.data.seq_len:,}")
    hist = result.history
    summary = {"cell": cell, "steps_done": result.steps_done, "steps": steps, "complete": result.complete,
               "wall_s": wall, "device": device_name(device), "tokens_per_s": result.tokens_per_s,
               "peak_mem_gib": result.peak_mem_bytes / 2**30 if result.peak_mem_bytes else None,
               "first_loss": hist[0]["loss"] if hist else None, "last_loss": hist[-1]["loss"] if hist else None,
               "figure": str(png) if png else None, "output": str(cell_dir)}
    (cell_dir / "run_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"{cell}: {json.dumps(summary)}")
    return summary


def train_cell_or_fall_back(args, cell: str, model, tokenizer, source, device, out: Path,
                            step_s: float | None) -> dict:
    """:func:`train_cell`; when it fails with anything but running out of memory and the cell was not already on
    the PyTorch reference (``--set backend=reference``), the cell is trained again from scratch through the
    reference in the time left, and the failure is kept in its ``run_summary.json``. A kernel that breaks on one
    card (a JIT build, an unsupported shape) so costs the speed, not the command's other cells."""
    try:
        return train_cell(args, cell, model, tokenizer, source, device, out, step_s)
    except torch.OutOfMemoryError:
        raise
    except Exception as e:
        if args.no_fallback or any(o.replace(" ", "") == "backend=reference" for o in EXTRA):
            raise
        import traceback

        traceback.print_exc()
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        log(f"{cell}: failed ({error}); training it again through the PyTorch reference cells")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        failed = out / f"{cell}.failed"
        shutil.rmtree(failed, ignore_errors=True)
        if (out / cell).exists():
            (out / cell).rename(failed)
        EXTRA.append("backend=reference")
        try:
            summary = train_cell(args, cell, model, tokenizer, source, device, out, None)
        finally:
            EXTRA.remove("backend=reference")
        summary["fell_back_from"] = error
        (out / cell / "run_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


# ------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, help="folder of the base model (config.json + *.safetensors + tokenizer)")
    ap.add_argument("--cells", default="gdn", help="comma-separated cells to train, in order (gdn, dn, mamba2); "
                    "'none' to only measure the speed")
    ap.add_argument("--minutes", type=float, default=4.5, help="training time per cell")
    ap.add_argument("--wall-minutes", type=float, default=9.5, help="the whole command's limit (stops and saves)")
    ap.add_argument("--margin-s", type=float, default=45.0, help="time kept back for saving at the end")
    ap.add_argument("--save-minutes", type=float, default=1.0, help="resumable checkpoint about this often")
    ap.add_argument("--steps", type=int, default=None, help="schedule length (default: from a timed step)")
    ap.add_argument("--max-steps", type=int, default=None, help="stop each cell at this update (resumable)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/coder-train")))
    ap.add_argument("--resume", type=Path, default=None, help="an earlier command's --out to continue from")
    ap.add_argument("--bench", default="old,new", help="settings to time (comma-separated; 'none' to skip); "
                    f"valid: {', '.join(SETTINGS)} (old-fla: what fla's kernels alone bring, if time allows)")
    ap.add_argument("--bench-cell", default="gdn", choices=("gdn", "dn", "mamba2"))
    ap.add_argument("--bench-steps", type=int, default=5)
    ap.add_argument("--bench-warmup", type=int, default=2)
    ap.add_argument("--ceiling-n", type=int, default=8192, help="size of the square matmul of the ceiling")
    ap.add_argument("--require-fla", action="store_true", help="fail at once when fla cannot differentiate the "
                    "gated cells here (instead of training through the PyTorch reference)")
    ap.add_argument("--no-fallback", action="store_true", help="a cell whose training fails stops the command "
                    "(default: it is trained again through the PyTorch reference cells in the time left)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides for every cell (e.g. data.seq_len=8192 micro_batch_size=2)")
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="a toy shape (random 2-layer Qwen2, bytes as tokens)")
    args = ap.parse_args(argv)
    args.cells = [] if args.cells == "none" else [c.strip() for c in args.cells.split(",") if c.strip()]
    args.bench = [] if args.bench == "none" else [s.strip() for s in args.bench.split(",") if s.strip()]
    bad = [c for c in args.cells if c not in ("gdn", "dn", "mamba2")]
    bad += [s for s in args.bench if s not in SETTINGS]
    if bad:
        ap.error(f"unknown cell(s) or setting(s) {bad}; cells: gdn, dn, mamba2; settings: {', '.join(SETTINGS)}")
    if not args.tiny and args.base is not None and not (args.base / "config.json").is_file():
        try:  # a `fetch-model` name (e.g. qwen2.5-coder-0.5b) whose copy is built
            from harness import local_models

            built = local_models.built_copy(str(args.base))
            args.base = Path(built) if built else args.base
        except (ImportError, ValueError, KeyError):
            pass
    if not args.tiny and (args.base is None or not (args.base / "config.json").is_file()):
        ap.error(f"--base {args.base}: not a model folder (no config.json) nor a built local copy; pass the "
                 "base's folder, or --tiny")
    if args.resume is not None and not args.resume.is_dir():
        ap.error(f"--resume {args.resume}: no such folder")
    return args


def main(argv: list[str] | None = None) -> int:
    from ahn.train.config import ConfigError
    from ahn.train.data import DataError

    args = parse_args(argv)
    EXTRA[:] = args.set
    try:
        return run(args)
    except (ConfigError, DataError) as e:  # e.g. the evaluation sources missing: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    from ahn.ops import fla_backend

    why = fla_backend.import_error() or fla_backend.gated_backward_error() if device.type == "cuda" else "CPU"
    log(f"device {device_name(device)}; fla for gated gradients: {'yes' if why is None else 'no (' + why + ')'}")
    if args.require_fla and why is not None:
        print(f"error: --require-fla but fla cannot differentiate the gated cells here: {why}", file=sys.stderr)
        return 2
    tokenizer = load_tokenizer(args)  # the data first: a refusal (no evaluation sources) comes before the model
    data_cfg = cell_config(args.cells[0] if args.cells else args.bench_cell, {}, args.tiny)
    source = build_corpus(data_cfg, tokenizer, args.tiny)
    log(f"data: {json.dumps(source.describe())}")
    source.write_manifest(out / "data_manifest.json")
    model = load_model(args, device)
    log(f"base loaded: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
        f"{next(model.parameters()).dtype}, none trainable")
    step_s = None
    if args.bench:
        ceiling = matmul_ceiling(device, args.ceiling_n if not args.tiny else 256)
        log(f"matmul ceiling {ceiling['tflops']:.1f} TFLOP/s")
        results = bench(args, model, source, device, ceiling, out)
        new = results["settings"].get("new", {})
        if new.get("step_s_median") and args.bench_cell in args.cells[:1]:
            step_s = new["step_s_median"] * data_cfg.grad_accum  # the bench times one micro-batch an update
    summaries = []
    for i, cell in enumerate(args.cells):
        summaries.append(train_cell_or_fall_back(args, cell, model, tokenizer, source, device, out,
                                                 step_s if i == 0 else None))
        (out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    log(f"done; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
