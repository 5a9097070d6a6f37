"""Where does the chunk graphs' memory go? `torch.cuda.memory_allocated()` at each step of their life.

`python -m bench.bench_gpu --chunk-graphs 1,0` has read AHN's chunk graphs (`ahn/chunk_graphs.py`) raising the
131,072-token prefill's peak from 9.4 to 10.5 GiB, with every later row of the same process about 1 GiB higher,
as if the graphs' memory outlived them. This script says where that memory is. On the Qwen2.5-3B shape with random bf16 weights (as
`bench/bench_gpu.py`), this prefills ahn-gdn far enough for every layer to capture its graph and replay it,
then reads the allocated bytes (and the bytes in the graphs' private pools, from the allocator's snapshot)
before the prefill, after it, after the cache is dropped, after the graphs are cleared, and after the method is
detached and garbage collected. Prints one JSON line per reading. With the allocator's history on, the
readings after the cache is dropped also list the largest blocks still allocated that the model did not own,
each with the Python frames that allocated it; the last readings clear cuBLAS's per-stream workspaces and time
what one matrix product on a fresh stream allocates (a candidate holder: one workspace per stream, kept for
the process's life).

    python -m bench.chunk_graph_memory --out chunk_graph_memory.jsonl
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import torch

from bench.bench_gpu import build_model, environment, make, randomize_ahn, timed_prefill  # noqa: E402


def live_blocks() -> list[dict]:
    """Every allocated block, with its segment's pool and (history on) the frames that allocated it."""
    blocks = []
    for segment in torch.cuda.memory_snapshot():
        address = segment["address"]
        for b in segment["blocks"]:
            if b["state"] == "active_allocated":
                blocks.append({"address": address, "size": b["size"], "stream": segment.get("stream"),
                               "pool": str(segment.get("segment_pool_id", "default")), "frames": b.get("frames", [])})
            address += b["size"]
    return blocks


def where(frames: list[dict], depth: int = 6) -> list[str]:
    """The innermost frames outside torch's own modules (the code that asked), innermost first."""
    mine = [f for f in frames if "/torch/" not in f.get("filename", "")] or frames
    return [f"{Path(f.get('filename', '?')).name}:{f.get('line')} {f.get('name')}" for f in mine[:depth]]


def reading(label: str, out, before: set | None = None, **extra) -> None:
    torch.cuda.synchronize()
    blocks = live_blocks()
    pools: dict[str, int] = {}
    for b in blocks:
        pools[b["pool"]] = pools.get(b["pool"], 0) + b["size"]
    rec = {"at": label, "allocated_gib": torch.cuda.memory_allocated() / 2**30,
           "reserved_gib": torch.cuda.memory_reserved() / 2**30, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
           "allocated_by_pool_gib": {k: v / 2**30 for k, v in pools.items() if v}, **extra}
    if before is not None:  # what is allocated now that was not when the model was built, largest first
        new = sorted((b for b in blocks if b["address"] not in before), key=lambda b: -b["size"])
        rec["new_blocks"] = len(new)
        rec["new_gib"] = sum(b["size"] for b in new) / 2**30
        rec["largest_new"] = [{"mib": b["size"] / 2**20, "pool": b["pool"], "stream": b["stream"],
                               "allocated_at": where(b["frames"])} for b in new[:12]]
    line = json.dumps(rec)
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunk", type=int, default=4096)
    p.add_argument("--evicting-chunks", type=int, default=4, help="chunks past sinks + window (captures on the 3rd)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    out = args.out.open("a") if args.out else None
    from baselines import attach
    from baselines.engine import prefill

    torch.cuda.memory._record_memory_history(max_entries=200_000, stacks="python")
    model = build_model()
    ids = torch.randint(0, 151000, (1, 128 + 32640 + args.evicting_chunks * args.chunk), device="cuda")
    reading("model built", out)
    model_blocks = {b["address"] for b in live_blocks()} | {ids.data_ptr()}
    method = make("ahn-gdn")
    with environment({"AHN_HARNESS_CHUNK_GRAPHS": "1"}), attach(model, method):
        randomize_ahn(method)
        reading("method attached", out)
        torch.cuda.reset_peak_memory_stats()
        cache = method.new_cache(model)
        prefill(model, method, cache, ids, chunk_size=args.chunk)
        graphs = method.chunk_graphs
        buffers = sum(t.numel() * t.element_size() for entry in graphs._lengths.values()
                      for t in (*entry.inputs, *(entry.outputs or ())))
        reading("after the prefill that captured", out, captures=graphs.captures, replays=graphs.replays,
                cache_gib=cache.nbytes() / 2**30, shared_buffers_gib=buffers / 2**30)
        torch.cuda.reset_peak_memory_stats()
        cache = method.new_cache(model)
        prefill(model, method, cache, ids, chunk_size=args.chunk)
        reading("after a second prefill (replays only)", out, captures=graphs.captures, replays=graphs.replays)
        del cache
        gc.collect()
        reading("cache dropped", out, model_blocks)
        graphs.clear()
        gc.collect()
        reading("graphs cleared", out, model_blocks)
    del method, graphs
    gc.collect()
    torch.cuda.empty_cache()
    reading("method detached and collected", out, model_blocks)
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()
        reading("cuBLAS workspaces cleared", out, model_blocks)
    a = torch.randn(256, 256, device="cuda", dtype=torch.bfloat16)
    for i in range(3):  # what a first matrix product on a new stream leaves allocated
        start = torch.cuda.memory_allocated()
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            a @ a
        torch.cuda.synchronize()
        reading(f"one product on new stream {i}", out, None, added_mib=(torch.cuda.memory_allocated() - start) / 2**20)
    bench_rows(model, ids, args.chunk, model_blocks, out)


def bench_rows(model, ids, chunk: int, model_blocks: set, out) -> None:
    """The rows of `bench_gpu.py --chunk-graphs 1,0` as that script runs them (a new method per row, the last
    prefill's cache dropped before the next prefill, no explicit collection): what is allocated before each row,
    each prefill's peak, and whether the last row's method was freed by its reference count alone. (Against a
    benchmark that kept the last cache through the next prefill, every row's peak carried one more ahn-gdn
    cache, 1.27 GiB, and the graphs' row 0.05 GiB over the others; nothing outlived a row but that cache.)"""
    import weakref

    from baselines import attach

    gc.disable()  # as between bench rows: only reference counts free anything
    previous = None
    method = cache = None
    try:
        for graphs in ("1", "0", "0"):
            method = make("ahn-gdn")
            reading(f"row graphs={graphs}: before", out, model_blocks,
                    previous_method_alive=previous is not None and previous() is not None)
            with attach(model, method), environment({"AHN_HARNESS_CHUNK_GRAPHS": graphs}):
                randomize_ahn(method)
                peaks = []
                for _ in range(3):
                    cache = None
                    _, peak, cache, _ = timed_prefill(model, method, ids, chunk)
                    peaks.append(peak / 2**30)
            reading(f"row graphs={graphs}: after", out, model_blocks, peaks_gib=peaks)
            previous = weakref.ref(method)
    finally:
        gc.enable()
    del method, cache


if __name__ == "__main__":
    main()
