"""Harness throughput: samples per hour of `harness run` on workloads shaped like the paper's evaluation.

A random-weight Qwen2.5-3B-shaped model is saved as a local folder (with the byte tokenizer, so a synthetic
prompt of N bytes is N tokens) and evaluated by `python -m harness run` itself (in-process), as a user would:
* `lveval-128k`: 128k-token prompts, 64 new tokens (LV-Eval's longest level);
* `infbench-sum`: 128k-token prompts, 1,024 new tokens (InfiniteBench's summarisation tasks).
Each workload runs with the new paths (`--decode static`, batched: the compiled step; cuDNN for causal and
full-window chunks; the fused norms, the model's and AHN's, and MLPs), with the new paths at B = 1 (the same
samples: a synthetic task's samples depend on how many are asked for, their needles spread over the depths),
and with them off (`--decode eager`, one sample at a time, `PATHS_OFF` and the chunk it used, `OFF_CHUNK`: the
engine as it was), in the same process on the same weights. What has no switch stays in both (the kept window copied once per chunk,
`baselines/raw_tokens.py`), so "off" is a little faster than the engine was, and the ratio a little smaller. Each
row also splits a sample's time into its prefill, its share of the decode and the rest (host work around them).
The batched run's generated token ids are compared with the B = 1 run's, sample by sample (per-sample
records must equal B = 1's; in bf16 a near-tie may break differently, and the table says where).
Samples per hour are 3600 × samples / Σ wall_s of the records (the steady state: model loading and compiling
are reported apart, as `startup_s`). Writes `throughput.{json,md}`.

    python -m bench.bench_throughput --out leaderboards/perf --method ahn-gdn --samples 8 --batch 8
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from statistics import median_high

from bench.bench_gpu import environment  # noqa: E402

WORKLOADS = {"lveval-128k": (131072, 64), "infbench-sum": (131072, 1024)}
# the engine before the fast paths: no cuDNN causal chunk, FlexAttention for every windowed chunk, the norms and
# MLPs as the model's own modules (with `--decode eager`, one sample at a time)
PATHS_OFF = {"AHN_HARNESS_CAUSAL_CUDNN": "0", "AHN_HARNESS_WINDOW_ATTENTION": "flex", "AHN_HARNESS_FUSED_LAYERS": "0"}
# the prefill's chunk before 16,384 became the default (`baselines/prefill_chunk.py`): the paths-off run uses
# it, as the engine did
OFF_CHUNK = 4096
# the new paths (the defaults on CUDA, set here so the benchmark does not follow the defaults)
PATHS_ON = {"AHN_HARNESS_STEP_COMPILE": "1", "AHN_HARNESS_DECODE_SPLITS": "auto",
            "AHN_HARNESS_DECODE_ATTENTION": "auto", "AHN_HARNESS_WINDOW_ATTENTION": "split",
            "AHN_HARNESS_FUSED_LAYERS": "1", "AHN_HARNESS_FUSED_ROTARY": "1"}


def save_model(folder: Path, layers: int | None, tiny: bool, method: str, sinks: int, window: int) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from tasks.byte_tokenizer import save_byte_tokenizer

    if tiny:  # CPU dry run of the script itself (seeded: the same model on every run)
        torch.manual_seed(0)
        config = Qwen2Config(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1 << 20)
        model = AutoModelForCausalLM.from_config(config)
    else:
        from bench.bench_gpu import build_model

        model = build_model(layers)
    model.generation_config.eos_token_id = 258  # the byte tokenizer's end token: never picked by random weights
    model.save_pretrained(folder)
    save_byte_tokenizer(folder)
    if method.startswith("ahn"):  # an AHN checkpoint in the released format, random output maps (memory runs)
        from ahn.checkpoint import save_ahn_checkpoint
        from baselines import attach, make_method

        ahn = make_method(method, sinks=sinks, window=window)
        with attach(model, ahn), torch.no_grad():
            torch.manual_seed(1)
            for p in ahn.blocks.parameters():
                if p.ndim == 3:
                    p.copy_(torch.randn_like(p, dtype=torch.float32).to(p.dtype) * 0.02)
            save_ahn_checkpoint(model, folder / "ahn", ahn.cell, model.config.to_dict())
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return folder


def run_once(model_dir: Path, out: Path, method: str, length: int, new: int, samples: int, decode: str,
             batch: int | None, sinks: int, window: int, chunk: int,
             profile: Path | None = None) -> tuple[dict, dict[str, list[int] | None]]:
    """One `harness run`: its timing row, and each sample's generated token ids by the hash of its input ids.
    With `profile`, the run is under cProfile and its functions by cumulative host time go to that file (where
    the host waits for the GPU, at a synchronisation, the wait is charged to the function that synchronises).
    cProfile sees the main thread only: the prompts, prepared on a worker thread (`harness.runner`), show as
    the main thread's wait for them in `_prepared_groups`."""
    from harness.cli import main

    label = f"{length // 1024}k" if length >= 1024 else str(length)
    argv = ["run", "--model", str(model_dir), "--method", method, "--tasks", f"synthetic:passkey@{label}",
            "--limit", str(samples), "--max-new-tokens", str(new), "--output", str(out), "--no-progress",
            "--decode", decode, "--chunk", str(chunk)]
    if method != "full":
        argv += ["--sinks", str(sinks), "--window", str(window)]
    if method.startswith("ahn"):
        argv += ["--ahn-checkpoint", str(model_dir / "ahn")]
    if batch:
        argv += ["--batch-size", str(batch)]
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if profiler:
        profiler.enable()
    code = main(argv)
    if profiler:
        profiler.disable()
    total = time.perf_counter() - t0
    if profiler:
        text = io.StringIO()  # every function's top 40, then the harness's own (this repository's files)
        stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
        stats.print_stats(40)
        stats.print_stats(f"^{re.escape(str(Path(__file__).resolve().parents[1]))}/(?!\\.venv/)", 80)
        profile.write_text(text.getvalue())
    if code != 0:
        raise RuntimeError(f"harness run exited {code}: {argv}")
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    steady = sum(r["wall_s"] for r in recs)
    ok = [r for r in recs if r["status"] == "ok"]  # a failed sample (out of memory) has no times to split
    if not ok:
        raise RuntimeError(f"harness run: every sample failed, e.g. {recs[0].get('error')!r}: {argv}")
    row = {"decode": decode, "batch": batch or 1, "chunk": chunk, "samples": len(recs), "failed": len(recs) - len(ok),
           "wall_s": total, "steady_s": steady, "startup_s": total - steady,
           "samples_per_hour": 3600 * len(recs) / steady, "prompt_tokens": ok[0]["prompt_tokens"],
           "new_tokens": ok[0]["n_generated"], **breakdown(ok)}
    return row, {r["input_ids_sha256"]: r["generated_ids"] for r in recs}


def breakdown(recs: Sequence[dict]) -> dict[str, float]:
    """Where a sample's wall time went, medians over the records: its own prefill; its share of the decode (a
    batch's decode time is shared by its rows, `decode_batch`); and the rest (the prompt's tokenising and hashing,
    the caches' copies into the decoder, the scoring and the record's write, any time the GPU waits for them)."""
    decode = [r["decode_s"] / max(1, r.get("decode_batch") or 1) for r in recs]
    other = [r["wall_s"] - r["prefill_s"] - d for r, d in zip(recs, decode)]
    return {"prefill_s_median": median_high([r["prefill_s"] for r in recs]),
            "decode_share_s_median": median_high(decode), "other_s_median": median_high(other)}


def compare(batched: dict[str, Sequence | None], alone: dict[str, Sequence | None]) -> dict:
    """The samples (by input ids) run both batched and alone: how many generations are equal, and for each that
    is not (by the first 12 hex digits of its input ids' hash), the first token where they part and the two
    lengths (batched, alone): where the first difference is the shorter length, one is a prefix of the other
    (it stopped earlier). Token ids, not the predictions' text: the 3B shape's vocabulary has 151,936 ids and the
    byte tokenizer decodes all but 259 of them to nothing, so the texts of a random model are a few characters
    that hide most differences."""
    keys = [k for k in alone if k in batched]
    parted, lengths = {}, {}
    for k in keys:
        a, b = list(batched[k] or []), list(alone[k] or [])
        if a != b:
            parted[k[:12]] = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            lengths[k[:12]] = [len(a), len(b)]
    return {"compared": len(keys), "equal": len(keys) - len(parted), "first_difference": parted, "lengths": lengths}


def write_report(rows: list[dict], checks: list[dict], args, save_s: float, warm_s: float) -> str:
    """`throughput.{json,md}` in `args.out` from the configurations run so far (written after each, so a run
    cut by its time limit keeps what it measured)."""
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    doc = {"device": device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "model_save_s": save_s,
           "warm_up_s": warm_s, "rows": rows, "batched_vs_alone": checks}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"# Harness throughput ({device}, {doc['date']}, torch {doc['torch']})", "",
             f"`harness run` on a random-weight Qwen2.5-3B-shaped model, {args.method}, {args.sinks} sinks + "
             f"{args.window:,} window. Samples per hour = 3600 × samples / Σ per-sample wall "
             "time (model loading and compilation apart). Reproduce: `python -m bench.bench_throughput`.", "",
             "Per sample (medians): its prefill, its share of the batch's decode, and the rest of its wall time.", "",
             "| workload | paths | batch | chunk | samples | prefill s | decode s | other s | samples / hour | "
             "vs paths off |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = {r["workload"]: r["samples_per_hour"] for r in rows if r["decode"] == "eager"}
    for r in rows:
        ratio = f"{r['samples_per_hour'] / base[r['workload']]:.1f}×" if r["workload"] in base else "(not yet)"
        paths = ("off (eager, one at a time)" if r["decode"] == "eager" else
                 "new (static step, batched)" if r["batch"] > 1 else "new (static step, B = 1)")
        lines.append(f"| {r['workload']} ({r['prompt_tokens']:,} + {r['new_tokens']:,}) | {paths} | {r['batch']} | "
                     f"{r['chunk']:,} | {r['samples']}{f' ({n} failed)' if (n := r.get('failed')) else ''} | "
                     f"{r['prefill_s_median']:.2f} | "
                     f"{r['decode_share_s_median']:.2f} | {r['other_s_median']:.2f} | {r['samples_per_hour']:.0f} | "
                     f"{ratio} |")
    lines += ["", "Generated token ids, batched against the same samples decoded alone (B = 1, same paths):", "",
              "| workload | batch | samples compared | equal | first differing token (lengths batched / alone), "
              "by sample |",
              "|---|---:|---:|---:|---|"]
    for c in checks:
        parted = ", ".join(f"{k}: {i} ({c['lengths'][k][0]} / {c['lengths'][k][1]})"
                           for k, i in c["first_difference"].items()) or "none"
        lines.append(f"| {c['workload']} | {c['batch']} | {c['compared']} | {c['equal']} | {parted} |")
    text = "\n".join(lines) + "\n"
    (args.out / "throughput.md").write_text(text)
    return text


def main() -> None:
    from baselines.prefill_chunk import DEFAULT_CHUNK

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("leaderboards/perf"))
    p.add_argument("--method", default="ahn-gdn")
    p.add_argument("--workloads", default="lveval-128k,infbench-sum")
    p.add_argument("--samples", type=int, default=8, help="samples per workload with the new paths")
    p.add_argument("--baseline-samples", type=int, default=2, help="samples per workload with the new paths off")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=None, help="override the prompt length (dry runs)")
    p.add_argument("--new-tokens", type=int, default=None, help="override the new tokens (dry runs)")
    p.add_argument("--sinks", type=int, default=128)
    p.add_argument("--window", type=int, default=32640)
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="prefill chunk (default: the engine's, "
                        f"{DEFAULT_CHUNK})")
    p.add_argument("--off-chunk", type=int, default=OFF_CHUNK, help="prefill chunk of the paths-off run (default: "
                        f"the engine's before the fast paths, {OFF_CHUNK})")
    p.add_argument("--profile-host", type=int, default=0, metavar="N",
                   help="after the table, N more samples of the first workload at B = 1 (new paths) under cProfile: "
                        "host_profile.txt says where a sample's time outside its prefill and decode goes")
    p.add_argument("--tiny", action="store_true", help="a tiny random model (CPU dry run of this script)")
    args = p.parse_args()
    if args.profile_host < 0:
        p.error(f"--profile-host must be a number of samples >= 0, got {args.profile_host}")
    rows, checks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model_dir = save_model(Path(tmp) / "model", None, args.tiny, args.method, args.sinks, args.window)
        save_s = time.perf_counter() - t0
        # compile once before timing: the static step's graphs depend on the batch and the decode buffers
        # (sinks + window for a bounded method), not on the prompt, so a short run with the same batch warms them
        t0 = time.perf_counter()
        warm_len = args.sinks + args.window + 2 * args.chunk if args.method != "full" else 2 * args.chunk
        with environment(PATHS_ON):
            for batch in sorted({args.batch, 1}):  # the batched step and the B = 1 step: one graph each
                run_once(model_dir, Path(tmp) / f"warm-up-{batch}", args.method, warm_len, 2, 1, "static", batch,
                         args.sinks, args.window, args.chunk)
        # and the paths off (FlexAttention's kernels and block masks are built on first use: without this,
        # the first baseline prefill has taken 10.8 s against 5.7 s for the next one)
        with environment(PATHS_OFF):
            run_once(model_dir, Path(tmp) / "warm-up-off", args.method, warm_len, 2, 1, "eager", None, args.sinks,
                     args.window, args.off_chunk)
        warm_s = time.perf_counter() - t0
        for name in args.workloads.split(","):
            length, new = WORKLOADS[name]
            length, new = args.length or length, args.new_tokens or new
            predictions = {}
            for decode, batch, n in (("static", args.batch, args.samples), ("static", 1, args.samples),
                                     ("eager", None, args.baseline_samples)):
                with environment(PATHS_OFF if decode == "eager" else PATHS_ON):
                    row, predictions[decode, batch] = run_once(
                        model_dir, Path(tmp) / f"{name}-{decode}-{batch}", args.method, length, new, n, decode,
                        batch, args.sinks, args.window, args.off_chunk if decode == "eager" else args.chunk)
                row.update(workload=name, method=args.method)
                rows.append(row)
                print(json.dumps(row), flush=True)
                write_report(rows, checks, args, save_s, warm_s)
            same = compare(predictions["static", args.batch], predictions["static", 1])
            checks.append({"workload": name, "batch": args.batch, **same})
            print(json.dumps(checks[-1]), flush=True)
        if args.profile_host:
            length, new = WORKLOADS[args.workloads.split(",")[0]]
            with environment(PATHS_ON):
                row, _ = run_once(model_dir, Path(tmp) / "profiled", args.method, args.length or length,
                                  args.new_tokens or new, args.profile_host, "static", 1, args.sinks, args.window,
                                  args.chunk, profile=args.out / "host_profile.txt")
            print("profiled (B = 1, under cProfile):", json.dumps(row), flush=True)
    print(write_report(rows, checks, args, save_s, warm_s))


if __name__ == "__main__":
    main()
