"""Where does the chunk graphs' memory go? `torch.cuda.memory_allocated()` at each step of their life.

The ninth session measured AHN's chunk graphs (`ahn/chunk_graphs.py`) once: the 131,072-token prefill's peak rose
from 9.4 to 10.5 GiB, and every later row of the same process read about 1 GiB more, as if the graphs' memory
outlived them (`docs/PERFORMANCE.md`). On the Qwen2.5-3B shape with random bf16 weights (as
`scripts/bench_gpu.py`), this prefills ahn-gdn far enough for every layer to capture its graph and replay it,
then reads the allocated bytes (and the bytes in the graphs' private pools, from the allocator's snapshot)
before the prefill, after it, after the cache is dropped, after the graphs are cleared, and after the method is
detached and garbage collected. Prints one JSON line per reading.

    python scripts/chunk_graph_memory.py --out chunk_graph_memory.jsonl
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repository, before any installed copy

from bench_gpu import build_model, environment, make, randomize_ahn  # noqa: E402


def reading(label: str, out, **extra) -> None:
    torch.cuda.synchronize()
    pools: dict[str, int] = {}
    for segment in torch.cuda.memory_snapshot():
        pool = str(segment.get("segment_pool_id", "default"))
        pools[pool] = pools.get(pool, 0) + sum(b["size"] for b in segment["blocks"]
                                               if b["state"] == "active_allocated")
    rec = {"at": label, "allocated_gib": torch.cuda.memory_allocated() / 2**30,
           "reserved_gib": torch.cuda.memory_reserved() / 2**30, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
           "allocated_by_pool_gib": {k: v / 2**30 for k, v in pools.items() if v}, **extra}
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

    model = build_model()
    ids = torch.randint(0, 151000, (1, 128 + 32640 + args.evicting_chunks * args.chunk), device="cuda")
    reading("model built", out)
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
        reading("cache dropped", out)
        graphs.clear()
        gc.collect()
        reading("graphs cleared", out)
    del method, graphs
    gc.collect()
    torch.cuda.empty_cache()
    reading("method detached and collected", out)


if __name__ == "__main__":
    main()
