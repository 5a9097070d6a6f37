"""Multi-GPU check: sharded evaluation equals one process, data-parallel AHN gradients equal one process.

Two parts, each run once with one process and once with ``torchrun --nproc_per_node N``:

* ``eval``: ``python -m harness run`` (AHN-GDN, 128 sinks + 32,640 window, ``synthetic:passkey@32k``) on a
  Qwen2.5-3B-shaped model with random bf16 weights and random small AHN output maps, saved as a local HF
  folder with the project's offline byte tokenizer. The vocabulary is cut to the tokenizer's 259 ids so that
  predictions are real text (with 151,936 random ids nearly every generated id would decode to nothing, and
  "identical predictions" would mean nothing); everything else is the 3B shape, and logits are computed for the
  last position only, so the cut changes neither prefill time nor memory beyond the 0.6 GB embedding. The
  per-sample results (ids, prompt tokens, prediction, score, generated tokens, cache bytes, FLOPs; not times)
  of the N-process run must be identical to the one-process run; wall time and samples/s are recorded for both.
* ``train``: one data-parallel AHN step of the training recipe at 24,576 tokens (full 3B shape, fixed draw of
  128 sinks + 8,064 window, gradient checkpointing, bf16 autocast, KL self-distillation) with a global batch of
  2 sequences: one process accumulates both (``micro_step`` with scale 1/2), N processes take one each and
  average with ``ahn.train.loop``'s all-reduce. The AHN gradients must agree (relative error <= 2e-2); peak
  memory, step time and tokens/s are recorded for both.

Usage (from the repo root; writes DIR/multi_gpu.json and DIR/multi_gpu.md, after each part)::

    python -m bench.gpu_multi --out leaderboards/perf --gpus 2            # 2 GPUs, about 5 minutes
    python -m bench.gpu_multi --tiny --out /tmp/multi_tiny                 # toy shapes, CPU + gloo

Every child process gets ``NCCL_NVLS_ENABLE=0`` (NVLink multicast off). Models and run folders go to
``--work`` (default: a temporary folder), never into ``--out``. Internal mode (one process of the ``train``
part): ``python -m bench.gpu_multi --dp-worker --seq-len 24576 --global-batch 2 --save G.pt``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

EVAL_FIELDS = ("key", "task", "level", "id", "status", "prompt_tokens_before", "prompt_tokens", "truncated",
               "prediction", "score", "n_generated", "cache_bytes_measured", "cache_bytes_measured_final",
               "flops_paper", "flops_actual")  # deterministic per-sample fields (times and memory are not)
SCRIPT = ["-m", "bench.gpu_multi"]  # children run in the repo root
T0 = time.time()


@dataclass(frozen=True)
class Shape:
    """Everything that differs between the real run (3B shape, GPUs) and the CPU smoke test."""

    eval_tasks: str
    eval_sinks: int
    eval_window: int
    eval_chunk: int
    eval_limit: int
    max_new_tokens: int
    dtype: str
    seq_len: int
    global_batch: int
    train_sinks: int
    train_window: int


REAL = Shape(eval_tasks="synthetic:passkey@32k", eval_sinks=128, eval_window=32640, eval_chunk=4096, eval_limit=8,
             max_new_tokens=8, dtype="bfloat16", seq_len=24576, global_batch=2, train_sinks=128,
             train_window=8064)
TINY = Shape(eval_tasks="synthetic:passkey@512", eval_sinks=4, eval_window=32, eval_chunk=128, eval_limit=4,
             max_new_tokens=8, dtype="float32", seq_len=256, global_batch=2, train_sinks=4, train_window=32)


def say(msg: str) -> None:
    print(f"[multi {time.time() - T0:6.1f}s] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------------
# child processes


def child_env(tiny: bool, n: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(NCCL_NVLS_ENABLE="0", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["CUDA_VISIBLE_DEVICES"] = "" if tiny else ",".join(str(i) for i in range(n))
    if tiny:  # torchrun gives each of several processes one thread: one process gets one too (fair, and faster)
        env["OMP_NUM_THREADS"] = "1"
    return env


def launcher(n: int) -> list[str]:
    """`python` for one process, `torchrun --standalone --nproc_per_node n` (same interpreter) for several."""
    if n == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)]


def shown(cmd: list[str], env: dict[str, str]) -> str:
    """The command as one would type it: env settings that matter, `python`/`torchrun` for the interpreter."""
    words = list(cmd)
    if words[:3] == [sys.executable, "-m", "torch.distributed.run"]:
        words = ["torchrun"] + words[3:]
    elif words[0] == sys.executable:
        words[0] = "python"
    prefix = [f"{k}={env[k]}" for k in ("CUDA_VISIBLE_DEVICES", "NCCL_NVLS_ENABLE", "OMP_NUM_THREADS") if k in env]
    return " ".join(prefix) + " " + shlex.join(words)


def run_child(cmd: list[str], env: dict[str, str], log: Path, tag: str) -> float:
    """Run a child with its output streamed (prefixed) and kept in `log`; wall seconds, or an error."""
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"{tag}: {shown(cmd, env)}")
    t0 = time.time()
    tail: list[str] = []
    with log.open("w") as fh, subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            tail = (tail + [line.rstrip()])[-30:]
            print(f"  [{tag}] {line.rstrip()}", flush=True)
        rc = proc.wait()
    wall = time.time() - t0
    if rc != 0:
        raise RuntimeError(f"{tag} exited with {rc} after {wall:.0f}s; last lines:\n" + "\n".join(tail))
    say(f"{tag}: done in {wall:.1f}s")
    return wall


# ------------------------------------------------------------------------------------------------------
# models


def model_config(tiny: bool, byte_vocab: bool):
    """The Qwen2.5-3B config (toy sizes with `tiny`); with `byte_vocab`, the byte tokenizer's ids."""
    from bench.gpu_train_3b_shape import qwen_3b_config

    config = qwen_3b_config(tiny)
    if byte_vocab:
        from tasks.byte_tokenizer import ENDOFTEXT, IM_END, SPECIAL_TOKENS, VOCAB_SIZE

        ids = {t: 256 + i for i, t in enumerate(SPECIAL_TOKENS)}
        config.vocab_size = VOCAB_SIZE
        config.bos_token_id, config.eos_token_id, config.pad_token_id = None, ids[IM_END], ids[ENDOFTEXT]
    return config


def random_model(config, device, dtype):
    """Random weights, seed 0 (the same on every rank: checked with `fingerprint`)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def randomize_output_maps(method, seed: int) -> None:
    """Small random AHN output maps (at init they are zero and the memory has no effect / no gradient)."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for blk in method.blocks:
            blk.fn.o_proj.weight.normal_(0.0, 0.02)


def fingerprint(model) -> list[float]:
    """Sum and sum of squares over every parameter: equal on two processes means equal weights (in practice)."""
    import torch

    s = torch.zeros(2, dtype=torch.float64, device=next(model.parameters()).device)
    with torch.no_grad():
        for p in model.parameters():
            x = p.detach().double()
            s += torch.stack([x.sum(), x.square().sum()])
    return [float(v) for v in s.cpu()]


def device_info() -> dict[str, Any]:
    import torch
    import transformers

    # plain strings (torch.__version__ is a TorchVersion): the saved report must load with weights_only=True
    info: dict[str, Any] = {"torch": str(torch.__version__), "transformers": transformers.__version__}
    try:
        import fla  # type: ignore[import-not-found]

        info["fla"] = getattr(fla, "__version__", "?")
    except ImportError:
        info["fla"] = None
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name()
        info["gpus_visible"] = torch.cuda.device_count()
    else:
        info["device"] = "cpu"
    return info


def build_eval_model(folder: Path, tiny: bool, sinks: int, window: int) -> None:
    """`folder/base` (HF model + byte tokenizer, as the tiny seed models are saved) and `folder/ahn-gdn`."""
    import torch

    from ahn.checkpoint import save_ahn_checkpoint
    from ahn.train.tiny_base import save_base
    from baselines import attach, make_method

    cuda = torch.cuda.is_available()
    t0 = time.time()
    model = random_model(model_config(tiny, byte_vocab=True), "cuda" if cuda else "cpu",
                         torch.bfloat16 if cuda else torch.float32)
    say(f"eval model: {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B parameters built in "
        f"{time.time() - t0:.1f}s")
    save_base(model, folder / "base")
    method = make_method("ahn", cell="gdn", sinks=sinks, window=window)
    torch.manual_seed(1)
    with attach(model, method):
        randomize_output_maps(method, seed=1)
        save_ahn_checkpoint(model, folder / "ahn-gdn", "gdn", model.config)
    (folder / "info.json").write_text(json.dumps(device_info(), indent=2) + "\n")
    say(f"eval model saved to {folder} in {time.time() - t0:.1f}s")


# ------------------------------------------------------------------------------------------------------
# part 1: sharded evaluation


def eval_command(folder: Path, output: Path, shape: Shape) -> list[str]:
    return ["-m", "harness", "run", "--model", str(folder / "base"), "--method", "ahn-gdn",
            "--ahn-checkpoint", str(folder / "ahn-gdn"), "--sinks", str(shape.eval_sinks),
            "--window", str(shape.eval_window), "--chunk", str(shape.eval_chunk), "--tasks", shape.eval_tasks,
            "--limit", str(shape.eval_limit), "--max-new-tokens", str(shape.max_new_tokens),
            "--dtype", shape.dtype, "--no-progress", "--output", str(output)]


def eval_numbers(records: list[dict[str, Any]], n: int, wall: float) -> dict[str, Any]:
    """Throughput of one run. Rank r ran samples r, r+n, … of the list (harness.runner), i.e. of this order."""
    per_rank = [records[r::n] for r in range(n)]
    busy = max(sum(x.get("wall_s") or 0.0 for x in rs) for rs in per_rank)
    steady = max(sum(x.get("wall_s") or 0.0 for x in rs[1:]) for rs in per_rank)  # first sample: compilation
    steady_n = sum(max(0, len(rs) - 1) for rs in per_rank)
    prefill = [x["prefill_s"] for x in records if x.get("prefill_s") is not None]
    peaks = [x["peak_mem_bytes"] for x in records if x.get("peak_mem_bytes")]
    return {
        "processes": n, "samples": len(records), "ok": sum(x.get("status") == "ok" for x in records),
        "command_wall_s": wall, "samples_per_s_end_to_end": len(records) / wall,
        "sample_phase_s": busy, "samples_per_s_sample_phase": len(records) / busy if busy else None,
        "samples_per_s_steady": steady_n / steady if steady and steady_n else None,
        "mean_prefill_s": sum(prefill) / len(prefill) if prefill else None,
        "mean_prefill_s_after_first": (sum(x.get("prefill_s") or 0.0 for rs in per_rank for x in rs[1:])
                                       / steady_n if steady_n else None),
        "prompt_tokens": sorted({x.get("prompt_tokens") for x in records}),
        "peak_mem_gib": max(peaks) / 2**30 if peaks else None,
        "nonempty_predictions": sum(bool(x.get("prediction")) for x in records),
    }


def part_eval(args: argparse.Namespace, shape: Shape, work: Path, out: Path) -> dict[str, Any]:
    from harness.store import load_run

    folder = work / "eval-model"
    if not (folder / "info.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        cmd = [sys.executable, *SCRIPT, "--build-eval-model", str(folder)] + (["--tiny"] if args.tiny else [])
        run_child(cmd, child_env(args.tiny, 1), out / "logs" / "build_eval_model.log", "build")
    result: dict[str, Any] = {"settings": {**asdict(shape), "method": "ahn-gdn", "model": str(folder / "base"),
                                           "ahn_output_maps": "random N(0, 0.02), seed 1"},
                              "info": json.loads((folder / "info.json").read_text()), "commands": {}, "runs": {}}
    records: dict[int, list[dict[str, Any]]] = {}
    for n in (1, args.gpus):
        output = work / f"eval-n{n}"
        shutil.rmtree(output, ignore_errors=True)  # a leftover folder would be resumed, not rerun
        env = child_env(args.tiny, n)
        cmd = launcher(n) + eval_command(folder, output, shape)
        result["commands"][str(n)] = shown(cmd, env)
        wall = run_child(cmd, env, out / "logs" / f"eval_n{n}.log", f"eval N={n}")
        records[n] = load_run(output).records
        shutil.copy(output / "samples.jsonl", out / f"eval_n{n}_samples.jsonl")
        result["runs"][str(n)] = eval_numbers(records[n], n, wall)
        say(f"eval N={n}: {json.dumps(result['runs'][str(n)])}")
    one = {r["key"]: {f: r.get(f) for f in EVAL_FIELDS} for r in records[1]}
    many = {r["key"]: {f: r.get(f) for f in EVAL_FIELDS} for r in records[args.gpus]}
    differ = sorted(k for k in set(one) | set(many) if one.get(k) != many.get(k))
    result.update(compared_fields=list(EVAL_FIELDS), identical=not differ and bool(one), differing_ids=differ)
    say(f"eval: per-sample results identical: {result['identical']} (differing: {differ or 'none'})")
    return result


# ------------------------------------------------------------------------------------------------------
# part 2: data-parallel AHN gradients


def dp_worker(args: argparse.Namespace) -> int:
    """One rank of a data-parallel AHN step (also the whole step when run as one process)."""
    import torch
    import torch.distributed as dist

    from ahn.train.config import TrainConfig
    from ahn.train.loop import _all_reduce_grads, _set_gc, freeze_all_but_ahn, init_distributed, micro_step
    from ahn.train.windows import Draw
    from baselines import attach, make_method
    from bench.gpu_train_3b_shape import RandomTokens

    cuda = torch.cuda.is_available()
    env = init_distributed("cuda" if cuda else "cpu")
    device = torch.device("cuda", env.local_rank) if cuda else torch.device("cpu")
    if args.global_batch % env.world:
        raise SystemExit(f"--global-batch {args.global_batch} is not a multiple of the world size {env.world}")
    accum = args.global_batch // env.world

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    t0 = time.time()
    model = random_model(model_config(args.tiny, byte_vocab=False), device,
                         torch.bfloat16 if cuda else torch.float32)
    method = make_method("ahn", cell=args.cell, sinks=args.sinks, window=args.window, backend="auto")
    torch.manual_seed(1)
    method.blocks = method.build_blocks(model).to(device=device, dtype=torch.float32)  # fp32 master weights
    randomize_output_maps(method, seed=2)
    source = RandomTokens(model.config.vocab_size, args.seq_len, seed=0)
    draw = Draw(args.sinks, args.window)
    cfg = TrainConfig(base="random", cell=args.cell, loss_chunk=2048)
    amp = torch.bfloat16 if cuda else None
    build_s = time.time() - t0

    def step(indices: list[int]) -> list[float]:
        """loop.py's update without the optimiser: micro-steps scaled by 1/accum, then the mean over ranks."""
        losses = []
        for index in indices:
            ids = torch.tensor([source.get(index)["input_ids"]], device=device)
            loss, _ = micro_step(model, method, ids, ids, draw, cfg, amp, 1.0 / accum, gc=True)
            losses.append(loss)
        for p in plist:  # as loop.py: unused parameters (GDN's D) get a zero gradient
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        _all_reduce_grads(plist, env)
        return losses

    with attach(model, method):
        params = freeze_all_but_ahn(model)
        plist = list(params.values())
        _set_gc(model, True)
        weights = fingerprint(model)
        sync()
        t1 = time.time()
        for _ in range(args.warmup):  # compilation (FlexAttention, kernels) happens here, not in the timed step
            step([10_000 + env.rank])
            for p in plist:
                p.grad = None
        sync()
        warmup_s = time.time() - t1
        if env.world > 1:
            dist.barrier()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        t2 = time.time()
        # loop.py's sequence indices for update 0: micro-batch a of rank r is a * world + r
        mine = [a * env.world + env.rank for a in range(accum)]
        losses = step(mine)
        sync()
        step_s = time.time() - t2
        grads = {k: p.grad.detach().float().cpu().clone() for k, p in params.items()}
        _set_gc(model, False)
    mine_report = {"rank": env.rank, "sequences": mine, "losses": losses, "step_s": step_s,
                   "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
                   "weights_fingerprint": weights}
    ranks = [mine_report]
    if env.world > 1:
        ranks = [None] * env.world  # type: ignore[list-item]
        dist.all_gather_object(ranks, mine_report)
    if env.rank == 0:
        step_s = max(r["step_s"] for r in ranks)
        tokens = args.global_batch * args.seq_len
        report = {
            **device_info(), "world": env.world, "cell": args.cell, "seq_len": args.seq_len,
            "global_batch": args.global_batch, "sinks": args.sinks, "window": args.window,
            "gradient_checkpointing": True, "autocast": "bf16" if amp is not None else "fp32",
            "build_s": build_s, "warmup_steps": args.warmup, "warmup_s": warmup_s, "step_s": step_s,
            "tokens": tokens, "tokens_per_s": tokens / step_s,
            "peak_mem_gib": max(r["peak_mem_gib"] for r in ranks) if cuda else None,
            "loss_mean": sum(x for r in ranks for x in r["losses"]) / args.global_batch,
            "same_weights_on_all_ranks": all(r["weights_fingerprint"] == weights for r in ranks), "ranks": ranks,
        }
        torch.save({"grads": grads, "report": report}, args.save)
        print("[dp-worker] " + json.dumps({k: v for k, v in report.items() if k != "ranks"}), flush=True)
    if env.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def compare_grads(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """Relative error of b against a: the whole vector, and per parameter kind (summed over layers)."""

    def rel(keys: list[str]) -> float:
        num = math.sqrt(sum(float((b[k] - a[k]).double().pow(2).sum()) for k in keys))
        den = math.sqrt(sum(float(a[k].double().pow(2).sum()) for k in keys))
        return num / den if den > 0 else (0.0 if num == 0 else float("inf"))

    if set(a) != set(b):
        raise RuntimeError(f"different gradient sets: {sorted(set(a) ^ set(b))[:5]}")
    kinds: dict[str, list[str]] = {}
    for k in a:
        kinds.setdefault(k.split(".ahn.fn.")[-1], []).append(k)
    return rel(list(a)), {kind: rel(keys) for kind, keys in sorted(kinds.items())}


def part_train(args: argparse.Namespace, shape: Shape, work: Path, out: Path) -> dict[str, Any]:
    import torch

    result: dict[str, Any] = {"settings": {**{k: v for k, v in asdict(shape).items() if k in (
        "seq_len", "global_batch", "train_sinks", "train_window")}, "cell": args.cell, "warmup": args.warmup,
        "tolerance": args.tolerance}, "commands": {}, "runs": {}}
    saved = {}
    for n in (1, args.gpus):
        path = work / f"grads_n{n}.pt"
        path.unlink(missing_ok=True)
        env = child_env(args.tiny, n)
        cmd = launcher(n) + [*SCRIPT, "--dp-worker", "--seq-len", str(shape.seq_len), "--global-batch",
                             str(shape.global_batch), "--sinks", str(shape.train_sinks), "--window",
                             str(shape.train_window), "--cell", args.cell, "--warmup", str(args.warmup),
                             "--save", str(path)] + (["--tiny"] if args.tiny else [])
        result["commands"][str(n)] = shown(cmd, env)
        wall = run_child(cmd, env, out / "logs" / f"train_n{n}.log", f"train N={n}")
        saved[n] = torch.load(path, map_location="cpu", weights_only=True)
        result["runs"][str(n)] = {**saved[n]["report"], "command_wall_s": wall}
    ref, dp = saved[1], saved[args.gpus]
    err, by_kind = compare_grads(ref["grads"], dp["grads"])
    fps = {n: s["report"]["ranks"][0]["weights_fingerprint"] for n, s in saved.items()}
    result.update(
        rel_err_all=err, rel_err_by_param=by_kind, grad_norm=math.sqrt(sum(float(g.double().pow(2).sum())
                                                                          for g in ref["grads"].values())),
        same_weights=len({tuple(v) for v in fps.values()}) == 1
        and all(s["report"]["same_weights_on_all_ranks"] for s in saved.values()),
    )
    result["pass"] = bool(err <= args.tolerance and result["same_weights"])
    say(f"train: AHN gradient rel err N={args.gpus} vs N=1: {err:.3e} (by param: "
        f"{ {k: f'{v:.1e}' for k, v in by_kind.items()} }) same weights {result['same_weights']} "
        f"-> {'PASS' if result['pass'] else 'FAIL'} (tolerance {args.tolerance:g})")
    return result


# ------------------------------------------------------------------------------------------------------
# report


def fmt(v: Any, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(r: dict[str, Any]) -> str:
    n = str(r["gpus"])
    lines = ["# Multi-GPU: sharded evaluation and data-parallel AHN training", "",
             f"Device: {r.get('device', '?')} × {r['gpus']}; date {r['date']}; torch {r.get('torch')}; "
             f"transformers {r.get('transformers')}; fla {r.get('fla')}"
             + ("; **tiny CPU smoke test (toy shapes, gloo)**" if r["tiny"] else "") + ".",
             "", f"Reproduce: `{r['command']}`", ""]
    e = r.get("eval")
    if e and "error" in e:
        lines += ["## Evaluation", "", f"FAILED: `{e['error'].splitlines()[0]}`", ""]
    elif e:
        s = e["settings"]
        lines += ["## Evaluation (`python -m harness run`)", "",
                  f"AHN-GDN ({s['eval_sinks']} sinks + {s['eval_window']:,} window, chunk {s['eval_chunk']:,}), "
                  f"`{s['eval_tasks']}` × {s['eval_limit']}, {s['max_new_tokens']} new tokens, {s['dtype']}; "
                  f"{'toy-sized' if r['tiny'] else 'Qwen2.5-3B-shaped'} random weights, byte tokenizer (vocabulary "
                  "259), AHN output maps random.", "",
                  f"Per-sample results identical between 1 and {n} processes: **{'yes' if e['identical'] else 'NO'}**"
                  + (f" (differing: {', '.join(e['differing_ids'])})" if e["differing_ids"] else "")
                  + f"; fields compared: {', '.join(e['compared_fields'])}.", "",
                  "| processes | samples | command wall s | samples/s (end to end) | sample phase s | samples/s "
                  "(sample phase) | samples/s (steady) | mean prefill s (after first) | peak GiB |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for k, x in e["runs"].items():
            lines.append(f"| {k} | {x['samples']} | {x['command_wall_s']:.1f} | {x['samples_per_s_end_to_end']:.3f} | "
                         f"{x['sample_phase_s']:.1f} | {fmt(x['samples_per_s_sample_phase'], '.3f')} | "
                         f"{fmt(x['samples_per_s_steady'], '.3f')} | {fmt(x['mean_prefill_s_after_first'])} | "
                         f"{fmt(x['peak_mem_gib'], '.1f')} |")
        lines += ["", "End to end includes process start, loading the weights and compilation; the sample phase is "
                  "the slowest rank's summed per-sample time; steady leaves out each rank's first sample.", "",
                  "Commands:", ""] + [f"- N={k}: `{c}`" for k, c in e["commands"].items()] + [""]
    t = r.get("train")
    if t and "error" in t:
        lines += ["## Data-parallel training step", "", f"FAILED: `{t['error'].splitlines()[0]}`", ""]
    elif t:
        s = t["settings"]
        lines += ["## Data-parallel AHN training step", "",
                  f"AHN-{s['cell'].upper()}, {s['seq_len']:,} tokens per sequence, global batch {s['global_batch']}, "
                  f"fixed draw {s['train_sinks']} sinks + {s['train_window']:,} window, gradient checkpointing, "
                  f"autocast {t['runs']['1']['autocast']}, {'toy-sized' if r['tiny'] else 'Qwen2.5-3B-shaped'} random "
                  "weights, KL self-distillation, random output maps; one warm-up "
                  "step (compilation) before the timed one.", "",
                  f"AHN gradients, {n} processes vs 1: relative error **{t['rel_err_all']:.2e}** (tolerance "
                  f"{s['tolerance']:g}: {'pass' if t['pass'] else 'FAIL'}); same weights on every process: "
                  f"{t['same_weights']}.", "",
                  "| processes | sequences per process | step s | tokens/s | peak GiB per GPU | loss |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for k, x in t["runs"].items():
            lines.append(f"| {k} | {x['global_batch'] // x['world']} | {x['step_s']:.2f} | {x['tokens_per_s']:,.0f} | "
                         f"{fmt(x['peak_mem_gib'], '.1f')} | {x['loss_mean']:.5f} |")
        lines += ["", "| parameter | rel. error |", "|---|---:|"]
        lines += [f"| {k} | {v:.2e} |" for k, v in t["rel_err_by_param"].items()]
        lines += ["", "Commands:", ""] + [f"- N={k}: `{c}`" for k, c in t["commands"].items()] + [""]
    return "\n".join(lines) + "\n"


def write(out: Path, report: dict[str, Any]) -> None:
    (out / "multi_gpu.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "multi_gpu.md").write_text(markdown(report))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="folder for multi_gpu.json / multi_gpu.md and the child logs")
    ap.add_argument("--work", type=Path, help="folder for models and run folders (default: a temporary one)")
    ap.add_argument("--gpus", type=int, default=2, help="processes of the sharded runs (one GPU each)")
    ap.add_argument("--parts", default="eval,train", help="comma-separated: eval, train")
    ap.add_argument("--tiny", action="store_true", help="toy shapes on CPU with gloo (tests the script anywhere)")
    ap.add_argument("--cell", default="dn", choices=("gdn", "dn", "mamba2"),
                    help="AHN cell of the training step (dn: fla's gated backward is refused on Hopper here)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps before the timed one")
    ap.add_argument("--tolerance", type=float, default=2e-2)
    ap.add_argument("--eval-window", type=int, help="override the evaluation window (default 32640; tiny 32)")
    # internal modes (child processes)
    ap.add_argument("--build-eval-model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--dp-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seq-len", type=int, default=REAL.seq_len, help=argparse.SUPPRESS)
    ap.add_argument("--global-batch", type=int, default=REAL.global_batch, help=argparse.SUPPRESS)
    ap.add_argument("--sinks", type=int, default=REAL.train_sinks, help=argparse.SUPPRESS)
    ap.add_argument("--window", type=int, default=REAL.train_window, help=argparse.SUPPRESS)
    ap.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    shape = TINY if args.tiny else REAL
    if args.eval_window:
        shape = Shape(**{**asdict(shape), "eval_window": args.eval_window})
    if args.dp_worker:
        if args.save is None:
            ap.error("--dp-worker needs --save")
        return dp_worker(args)
    if args.build_eval_model:
        build_eval_model(args.build_eval_model, args.tiny, shape.eval_sinks, shape.eval_window)
        return 0
    if args.out is None:
        ap.error("--out is required")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not set(parts) <= {"eval", "train"}:
        ap.error(f"--parts takes eval and/or train, got {args.parts!r}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_multi_"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "tiny": args.tiny,
        "gpus": args.gpus, "command": shlex.join(["python", "-m", "bench.gpu_multi"] + list(
            sys.argv[1:] if argv is None else argv)), "work": str(work),
    }
    say(f"parts {parts}, {args.gpus} processes, {'tiny CPU' if args.tiny else '3B shape'}; work folder {work}")
    ok = True
    for part in parts:
        try:
            report[part] = (part_eval if part == "eval" else part_train)(args, shape, work, out)
        except Exception as exc:  # keep what the other part measures
            report[part] = {"error": f"{type(exc).__name__}: {exc}"}
            say(f"{part} FAILED: {exc}")
        info = report[part].get("info") or report[part].get("runs", {}).get("1") or {}
        for key in ("device", "torch", "transformers", "fla"):
            if key in info:
                report.setdefault(key, info[key])
        ok = ok and bool(report[part].get("identical" if part == "eval" else "pass"))
        report["ok"] = ok
        write(out, report)
        say(f"wrote {out / 'multi_gpu.json'} and {out / 'multi_gpu.md'}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    say("ALL PASS" if ok else "SOMETHING FAILED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
