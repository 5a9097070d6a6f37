"""FlexAttention's decoding kernel alone, over its options, against the two batched products.

The static decode step's attention (`baselines.static_decode`) at the Qwen2.5-3B shape: one query per row on 16
heads over 2 KV heads of dim 128, `--slots` slots (sinks + window: 32,768), bf16. For each batch size, the
products (`decode_attention`, compiled, the slot reduction in pieces of 1,024) and FlexAttention compiled with
each candidate of kernel options (`--configs`; `default` is torch's own choice). Each is captured as one CUDA
graph of `--calls` calls (as the step replays it: no host launch in the timing, which at B = 1 would measure the
host, not the kernel) and timed with CUDA events as the median of `--reps`
replays, with the spread, and the bytes it must read (K and V) over the median as GB/s. Prints a table, writes
`flex_decode.json` and the fastest options at the largest batch as `flex_decode_best.txt` (an
AHN_HARNESS_FLEX_DECODE value).

    python -m bench.bench_flex_decode --out leaderboards/perf/flex --batches 1,8
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

CONFIGS = ("default;BLOCK_N=64,num_stages=3,num_warps=2;BLOCK_N=64,num_stages=4,num_warps=2;"
           "BLOCK_N=32,num_stages=4,num_warps=2;BLOCK_N=128,num_stages=3,num_warps=4;"
           "BLOCK_N=64,num_stages=3,num_warps=2,SPLIT_KV=32;BLOCK_N=64,num_stages=3,num_warps=2,SPLIT_KV=64;"
           "BLOCK_N=64,num_stages=3,num_warps=2,SPLIT_KV=128")


def parse(config: str) -> dict[str, int]:
    if config == "default":
        return {}
    return {k: int(v) for k, v in (item.split("=") for item in config.split(","))}


def time_ms(fn, calls: int, reps: int) -> tuple[float, float]:
    """Median ms per call (and the spread) of `calls` calls captured as one CUDA graph, replayed `reps` times."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    runs = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        runs.append(start.elapsed_time(end) / calls)
    return statistics.median(runs), max(runs) - min(runs)


def main() -> None:
    from baselines.static_decode import decode_attention, flex_decode_attention, slot_blocks

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("leaderboards/perf/flex"))
    p.add_argument("--batches", default="1,8")
    p.add_argument("--slots", type=int, default=32768)
    p.add_argument("--configs", default=CONFIGS, help="candidates separated by ';'")
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args()
    dev, c = torch.device("cuda"), args.slots
    rows = []
    print("| B | kernel | options | µs per call | spread | GB/s |\n|---:|---|---|---:|---:|---:|", flush=True)
    for b in (int(x) for x in args.batches.split(",")):
        g = torch.Generator("cuda").manual_seed(b)
        q = torch.randn(b, 16, 1, 128, device=dev, generator=g, dtype=torch.bfloat16)
        k = torch.randn(b, 2, c, 128, device=dev, generator=g, dtype=torch.bfloat16)
        v = torch.randn(b, 2, c, 128, device=dev, generator=g, dtype=torch.bfloat16)
        bias = torch.zeros(b, 1, c, device=dev)
        nbytes = k.numel() * k.element_size() * 2
        blocks = slot_blocks(c, dev)
        ref = decode_attention(q.float(), k.float(), v.float(), bias, 128 ** -0.5)
        candidates = [("products", "pieces of 1,024", torch.compile(
            lambda q=q, k=k, v=v, bias=bias: decode_attention(q, k, v, bias, 128 ** -0.5, c // 1024)))]
        for config in args.configs.split(";"):
            fn = torch.compile(flex_decode_attention)
            candidates.append(("flex", config, lambda fn=fn, config=config, q=q, k=k, v=v, bias=bias, blocks=blocks:
                               fn(q, k, v, bias, 128 ** -0.5, blocks, parse(config))))
        for kernel, config, fn in candidates:
            try:
                err = ((fn().float() - ref).norm() / ref.norm()).item()
                ms, spread = time_ms(fn, args.calls, args.reps)
            except Exception as exc:  # noqa: BLE001 - a config the kernel refuses: say so, go on
                print(f"| {b} | {kernel} | {config} | failed: {type(exc).__name__}: {str(exc)[:120]} | | |", flush=True)
                continue
            row = {"batch": b, "kernel": kernel, "options": config, "us": ms * 1e3, "spread_us": spread * 1e3,
                   "gb_per_s": nbytes / (ms * 1e-3) / 1e9, "rel_err": err}
            rows.append(row)
            print(f"| {b} | {kernel} | {config} | {row['us']:.1f} | {row['spread_us']:.1f} | {row['gb_per_s']:.0f} |",
                  flush=True)
            torch._dynamo.reset()
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "slots": c, "rows": rows}
    (args.out / "flex_decode.json").write_text(json.dumps(doc, indent=2) + "\n")
    largest = max(r["batch"] for r in rows)
    flex = [r for r in rows if r["kernel"] == "flex" and r["batch"] == largest and r["options"] != "default"]
    if flex:
        best = min(flex, key=lambda r: r["us"])["options"]
        (args.out / "flex_decode_best.txt").write_text(best + "\n")
        print(f"fastest at B = {largest}: {best}", flush=True)


if __name__ == "__main__":
    main()
