"""GPU benchmark: prefill time / peak memory and decode time per token on a Qwen2.5-3B-shaped model.

Random bf16 weights (speed does not depend on weight values); AHN output maps are random too, so the memory
path really runs. Methods: full, swa and ahn-gdn (paper setting: 128 sinks + 32,640 window). Also checks the
fast path (FlexAttention + fla kernels) against the reference path (SDPA with an explicit mask + PyTorch
chunked recurrence) on the same model.

    python scripts/bench_gpu.py --out leaderboards/perf        # on an H100; writes gpu_bench.{json,md}
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch


def build_model(layers: int | None = None):
    from transformers import AutoModelForCausalLM, Qwen2Config

    from baselines.model_configs import hf_config

    cfg = dict(hf_config("Qwen2.5-3B-Instruct"))
    if layers:
        cfg["num_hidden_layers"] = layers
    config = Qwen2Config(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval()


def randomize_ahn(method, scale: float = 0.02) -> None:
    g = torch.Generator(device="cuda").manual_seed(1)
    with torch.no_grad():
        for p in method.blocks.parameters():
            if p.ndim == 3:
                p.copy_(torch.randn(p.shape, generator=g, device=p.device, dtype=torch.float32).to(p.dtype) * scale)


def make(name: str):
    from baselines import make_method

    if name == "full":
        return make_method("full")
    if name == "swa":
        return make_method("swa", sinks=128, window=32640)
    return make_method(name, sinks=128, window=32640)


def timed_prefill(model, method, ids, chunk):
    from baselines.engine import prefill

    cache = method.new_cache(model)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    logits = prefill(model, method, cache, ids, chunk_size=chunk)
    torch.cuda.synchronize()
    return time.perf_counter() - t0, torch.cuda.max_memory_allocated(), cache, logits


def timed_decode(model, method, cache, steps: int = 24):
    from baselines.engine import decode_step

    tok = torch.zeros(1, dtype=torch.long, device="cuda")
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        decode_step(model, method, cache, tok)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[4:])


def parity(model, length: int, chunk: int) -> dict:
    """ahn-gdn logits: fast path vs reference path on one prompt longer than sinks + window."""
    from baselines import attach

    ids = torch.randint(0, 151000, (1, length), device="cuda", generator=torch.Generator("cuda").manual_seed(5))
    out = {}
    for label, flex, backend in (("fast", "1", "auto"), ("reference", "0", "reference")):
        os.environ["AHN_HARNESS_FLEX"] = flex
        method = make("ahn-gdn")
        method.backend = backend
        torch.manual_seed(0)  # cells are built at attach: same seed, same cells on both paths
        with attach(model, method):
            randomize_ahn(method)
            _, _, _, logits = timed_prefill(model, method, ids, chunk)
        out[label] = logits.float()
    os.environ["AHN_HARNESS_FLEX"] = "1"
    rel = ((out["fast"] - out["reference"]).norm() / out["reference"].norm()).item()
    agree = (out["fast"].argmax(-1) == out["reference"].argmax(-1)).float().mean().item()
    return {"length": length, "rel_err_logits": rel, "argmax_agree": agree}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("leaderboards/perf"))
    parser.add_argument("--lengths", default="8192,32768,65536,131072")
    parser.add_argument("--methods", default="full,swa,ahn-gdn")
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--parity-length", type=int, default=40960)
    parser.add_argument("--layers", type=int, default=None, help="fewer layers for a quick try")
    args = parser.parse_args()

    from baselines import attach

    model = build_model(args.layers)
    lengths = [int(x) for x in args.lengths.split(",")]
    rows = []
    for name in args.methods.split(","):
        method = make(name)
        with attach(model, method):
            if name.startswith("ahn"):
                randomize_ahn(method)
            warm = torch.randint(0, 151000, (1, 2 * args.chunk + 17), device="cuda")
            timed_prefill(model, method, warm, args.chunk)  # compile flex / fla kernels first
            for length in lengths:
                ids = torch.randint(0, 151000, (1, length), device="cuda")
                try:
                    seconds, peak, cache, _ = timed_prefill(model, method, ids, args.chunk)
                    decode = timed_decode(model, method, cache) if length in (8192, 32768, 131072) else None
                    row = {"method": name, "length": length, "prefill_s": seconds, "peak_gib": peak / 2**30,
                           "cache_gib": cache.nbytes() / 2**30, "decode_ms": decode * 1e3 if decode else None}
                except torch.OutOfMemoryError as exc:
                    row = {"method": name, "length": length, "error": f"OOM: {str(exc).splitlines()[0]}"}
                    torch.cuda.empty_cache()
                rows.append(row)
                print(json.dumps(row), flush=True)
                del ids
                torch.cuda.empty_cache()
    par = parity(model, args.parity_length, args.chunk)
    print(json.dumps(par), flush=True)
    doc = {
        "device": torch.cuda.get_device_name(), "date": datetime.date.today().isoformat(),
        "torch": torch.__version__, "model": "Qwen2.5-3B config, random bf16 weights",
        "layers": args.layers or 36, "chunk": args.chunk, "sinks": 128, "window": 32640, "rows": rows,
        "parity": par,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"# GPU benchmark ({doc['device']}, {doc['date']}, torch {doc['torch']})", "",
             f"{doc['model']}, {doc['layers']} layers, prefill chunk {args.chunk}, sinks 128 + window 32,640. "
             "Reproduce: `python scripts/bench_gpu.py`.", "",
             "| method | prompt tokens | prefill s | peak GiB | cache GiB | decode ms/token |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['length']:,} | {r['error']} | | | |")
        else:
            d = f"{r['decode_ms']:.1f}" if r["decode_ms"] else ""
            lines.append(f"| {r['method']} | {r['length']:,} | {r['prefill_s']:.2f} | {r['peak_gib']:.1f} | "
                         f"{r['cache_gib']:.2f} | {d} |")
    lines += ["", f"Fast path vs reference (ahn-gdn, {par['length']:,} tokens): relative error of the last "
              f"logits {par['rel_err_logits']:.2e}, argmax agreement {par['argmax_agree']:.0%}."]
    (args.out / "gpu_bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
