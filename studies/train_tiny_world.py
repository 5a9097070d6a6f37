"""Build the tiny world end to end: pretrain the byte-level base, then distil AHN-GDN, AHN-DN and AHN-Mamba2 on it.

    python -m studies.train_tiny_world            # GPU (1-2 H100s: about 9 minutes), writes leaderboards/tiny/
    python -m studies.train_tiny_world --quick    # CPU smoke test (~15 s), writes runs/tiny-world-quick/

Seeded throughout (seed 0). Expected outputs under ``--out`` (default ``leaderboards/tiny``):

* ``base/``: the base LM as an HF folder (``config.json``, ``model.safetensors`` in bf16 (~6 MB),
  ``tokenizer.json`` + ``tokenizer_config.json`` + ``chat_template.jinja``, ``generation_config.json`` with
  eos = ``<|im_end|>`` (258) and repetition_penalty 1.0), ``pretrain_config.json``, ``train_log.jsonl`` (loss,
  lr, tokens/s every few steps, eval rows with per-task accuracy) and ``eval.json`` (final accuracy at the
  training length, and with full attention at 2x/4x/8x that length).
* ``ahn-gdn/``, ``ahn-dn/``, ``ahn-mamba2/``: released-format AHN checkpoints (``model.safetensors`` with only
  the ``model.layers.{i}.ahn.fn.*`` tensors in bf16, ``config.json`` = the base config + AHN keys), plus
  ``train_config.json``, ``train_log.jsonl`` (loss/KL, lr, grad-norm, tokens/s, window draws per step) and
  ``train_summary.json``.
* ``world.json``: what ran (configs, seeds, device, versions, wall time per stage) and a teacher-forced check of
  each model on held-out synthetic samples at 32 sinks + 480 window (the tiny presets), beside sinks + SWA and
  full attention.

Resumable trainer checkpoints go to ``runs/tiny-world/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# At 1-2k tokens dense SDPA masks are cheap, while FlexAttention would compile once per random (sinks, window)
# pair (baselines/flex.py specialises on them): switch it off for the tiny world unless asked for.
os.environ.setdefault("AHN_HARNESS_FLEX", "0")

CONFIGS = REPO / "ahn" / "train" / "configs"
CELLS = ("gdn", "dn", "mamba2")
EVAL_SINKS, EVAL_WINDOW = 32, 480  # harness.presets TINY_SINKS / TINY_WINDOW

QUICK_BASE = ["steps=16", "seq_lens=[256]", "seq_len_weights=null", "tokens_per_step=2048", "eval_every=8", "eval_lengths=[256]",
              "eval_samples=2", "num_workers=0", "time_budget_s=null", "final_eval_lengths=[]", "log_every=4",
              "hidden_size=64", "intermediate_size=128", "num_layers=2", "head_dim=16"]
QUICK_AHN = ["steps=3", "data.seq_len=256", "window.window_candidates=[64,128]", "micro_batch_size=2", "data.num_workers=0", "save_every=2",
             "log_every=1"]


def _git_rev() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return None


def _gpu_for(i: int) -> str | None:
    """Round-robin over the visible GPUs (None on a CPU machine)."""
    n = torch.cuda.device_count()
    if not n:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(k) for k in range(n)]
    return ids[i % len(ids)]


def _launch(cell: str, overrides: list[str], gpu: str | None, out: Path, config: Path) -> subprocess.Popen:
    """``python -m ahn.train`` for one cell, its console output into ``<out>/ahn-<cell>/train_stdout.log``."""
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    log_dir = out / f"ahn-{cell}"
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ahn.train", "--config", str(config), *overrides]
    print(f"[tiny-world] ahn-{cell} on {'GPU ' + gpu if gpu is not None else 'CPU'}: {' '.join(cmd)}",
          file=sys.stderr, flush=True)
    with (log_dir / "train_stdout.log").open("w") as log:  # the child keeps its own handle
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def check_world(out: Path, cells: list[str], lengths: list[int], n: int, seed: int) -> dict:
    """Teacher-forced accuracy of full attention, sinks + SWA and each AHN at the tiny presets' window."""
    from transformers import AutoModelForCausalLM

    from ahn.checkpoint import load_ahn_state_dict
    from ahn.train.tiny_base import EVAL_TASKS, eval_items, evaluate
    from baselines import attach, make_method

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.bfloat16 if device.type == "cuda" else None
    model = AutoModelForCausalLM.from_pretrained(str(out / "base"), attn_implementation="sdpa",
                                                 dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
    model = model.to(device).eval()
    items = eval_items(list(EVAL_TASKS), lengths, n, seed + 17)
    pad = model.config.pad_token_id or 0
    results = {"full": evaluate(model, items, 8, device, amp, pad)}
    methods = {"swa": make_method("swa", sinks=EVAL_SINKS, window=EVAL_WINDOW)}
    for cell in cells:
        methods[f"ahn-{cell}"] = make_method("ahn", cell=cell, sinks=EVAL_SINKS, window=EVAL_WINDOW)
    for name, method in methods.items():
        with attach(model, method):
            if name.startswith("ahn"):
                load_ahn_state_dict(out / name, model, strict=True)
            results[name] = evaluate(model, items, 8, device, amp, pad)
    return {"sinks": EVAL_SINKS, "window": EVAL_WINDOW, "samples_per_task_and_length": n,
            "metric": "share of samples whose whole completion is the arg-max continuation", "accuracy": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and a few steps (CPU smoke test)")
    ap.add_argument("--out", help="output folder (default leaderboards/tiny; with --quick runs/tiny-world-quick)")
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--skip-base", action="store_true", help="reuse an existing <out>/base")
    ap.add_argument("--ahn-config", default=str(CONFIGS / "tiny_ahn.json"),
                    help="distillation config of the cells (e.g. ahn/train/configs/tiny_ahn_answers.json)")
    ap.add_argument("--check-lengths", default="512,1024,2048,4096", help="lengths of the final check")
    ap.add_argument("--check-samples", type=int, default=8)
    ap.add_argument("--set", dest="ahn_overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override of the cells' training config (repeatable), e.g. --set optim.lr=1e-2")
    args = ap.parse_args(argv)

    from ahn.train.tiny_base import load_tiny_config, pretrain

    out = Path(args.out) if args.out else (REPO / ("runs/tiny-world-quick" if args.quick else "leaderboards/tiny"))
    ckpt_root = REPO / "runs" / ("tiny-world-quick-ckpt" if args.quick else "tiny-world")
    if args.out:  # resumable checkpoints of a run into another folder must not mix with the default run's
        ckpt_root = ckpt_root.with_name(f"{ckpt_root.name}-{out.name}")
    cells = [c for c in args.cells.split(",") if c]
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "git_revision": _git_rev(), "quick": args.quick, "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "stages": {},
    }
    t_all = time.time()
    base_overrides = (QUICK_BASE if args.quick else []) + [f"output_dir={out / 'base'}"]
    if not args.skip_base:
        t0 = time.time()
        summary = pretrain(load_tiny_config(str(CONFIGS / "tiny_base.json"), base_overrides))
        manifest["stages"]["base"] = {"seconds": time.time() - t0, "config": "ahn/train/configs/tiny_base.json",
                                      "overrides": base_overrides, "summary": summary}
    jobs = []
    for i, cell in enumerate(cells):
        overrides = [f"base={out / 'base'}", f"cell={cell}", f"output_dir={out / f'ahn-{cell}'}",
                     f"checkpoint_dir={ckpt_root / f'ahn-{cell}'}", "resume=never"]
        overrides += (QUICK_AHN if args.quick else []) + args.ahn_overrides
        jobs.append((cell, overrides, _gpu_for(i)))
    t0 = time.time()
    # The cells are independent: they train side by side, one process each, spread over the visible GPUs (a
    # tiny model leaves an H100 mostly idle, so two on one GPU still finish sooner than one after the other).
    ahn_config = Path(args.ahn_config)
    procs = [(cell, ov, _launch(cell, ov, gpu, out, ahn_config)) for cell, ov, gpu in jobs]
    failed = []
    for cell, overrides, proc in procs:
        code = proc.wait()
        stage = {"seconds": time.time() - t0, "config": str(ahn_config.relative_to(REPO)) if ahn_config.is_relative_to(
            REPO) else str(ahn_config), "overrides": overrides,
                 "exit_code": code, "log": f"ahn-{cell}/train_stdout.log"}
        summary_file = out / f"ahn-{cell}" / "train_summary.json"
        if code == 0 and summary_file.exists():
            stage["summary"] = json.loads(summary_file.read_text())
        else:
            failed.append(cell)
        manifest["stages"][f"ahn-{cell}"] = stage
        print(f"[tiny-world] ahn-{cell}: exit {code}, {stage.get('summary', {}).get('final_loss')}", file=sys.stderr,
              flush=True)
    if failed:
        (out / "world.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        print(f"[tiny-world] failed: {failed}; see their train_stdout.log", file=sys.stderr, flush=True)
        return 1
    t0 = time.time()
    lengths = [int(x) for x in args.check_lengths.split(",")] if not args.quick else [256, 512]
    manifest["check"] = check_world(out, cells, lengths, args.check_samples if not args.quick else 2, seed=0)
    manifest["stages"]["check"] = {"seconds": time.time() - t0}
    manifest["total_seconds"] = time.time() - t_all
    (out / "world.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    print(f"[tiny-world] done in {manifest['total_seconds']:.0f}s: {json.dumps(manifest['check']['accuracy'])}",
          file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
