"""Where does a static decode step go? The graphed step's kernels under the torch profiler.

On the Qwen2.5-3B shape with random bf16 weights (as `bench/bench_gpu.py`), for each method: a prefill of
`--length` tokens (past sinks + window, so the window is full and AHN's memory writes every step), the default
static step (`baselines.static_decode.StaticDecoder`, compiled and captured as one CUDA graph) loaded with it,
then `--steps` replays under the profiler, for each of `--batches` (the request loaded into every row). Prints
the step's median time unprofiled, and its kernels grouped by name with their GPU time and launches per step,
so the kernels summed against the step say how much of it is gaps between kernels. Writes everything as JSON
lines to `--out`.

    python -m bench.profile_decode --methods ahn-gdn,swa --length 40960 --out prof_decode.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.bench_gpu import build_model, make, randomize_ahn  # noqa: E402
from bench.profile_prefill import cuda_ms, emit  # noqa: E402


def profile_step(model, name: str, length: int, steps: int, top: int, out, batch: int = 1) -> None:
    from torch.profiler import ProfilerActivity, profile

    from baselines import attach
    from baselines.engine import prefill
    from baselines.static_decode import StaticDecoder

    method = make(name)
    with attach(model, method):
        if name.startswith("ahn"):
            randomize_ahn(method)
        ids = torch.randint(0, 151000, (1, length), device="cuda")
        cache = method.new_cache(model)
        first = int(prefill(model, method, cache, ids).argmax(-1))
        dec = StaticDecoder(model, method, batch, length + 8 * steps + 512)
        dec.capture()
        for row in range(batch):
            dec.load(row, cache, ids, first)
        step_ms, spread = cuda_ms(dec.step, reps=5 * steps, warmup=3)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(steps):
                dec.step()
            torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    kernels.sort(key=lambda e: e.self_device_time_total, reverse=True)
    kernel_ms = sum(e.self_device_time_total for e in kernels) / 1e3 / steps
    rows = [{"name": e.key[:100], "us_per_step": e.self_device_time_total / steps, "per_step": e.count / steps}
            for e in kernels[:top]]
    launches = sum(e.count for e in kernels) / steps
    emit(out, {"profile_decode": name, "length": length, "batch": batch, "step_ms": step_ms,
               "step_spread_ms": spread, "kernel_ms_per_step": kernel_ms, "kernels_per_step": launches,
               "compile": dec.compile_backend, "splits": dec.splits, "attention": dec.attention, "top_kernels": rows})
    print(f"\n== {name} at {length} tokens, B = {batch}, {dec.attention} attention: step {step_ms:.2f} ms "
          f"(± {spread:.2f}), kernels {kernel_ms:.2f} ms in {launches:.0f} launches per step", flush=True)
    for r in rows:
        print(f"  {r['us_per_step']:8.1f} us  {r['per_step']:6.1f}/step  {r['name']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--length", type=int, default=40960)
    p.add_argument("--methods", default="ahn-gdn,swa")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--batches", default="1", help="rows decoded together, e.g. 1,8")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    out = args.out.open("a") if args.out else None
    emit(out, {"device": torch.cuda.get_device_name(), "torch": torch.__version__})
    model = build_model()
    for name in args.methods.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            profile_step(model, name, args.length, args.steps, args.top, out, batch)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
