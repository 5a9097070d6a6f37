"""Decode benchmark: eager engine vs static step (one CUDA graph) at B = 1 and batched, and stock transformers.

Qwen2.5-3B shape with random bf16 weights (`bench/bench_gpu.py`'s model), 128 sinks + 32,640 window. For
each method and prompt length: one chunked prefill, then
* `eager`: the engine's `decode_step` (stock modules + the registered attention function), B = 1;
* `static B=b`: `baselines.static_decode.StaticDecoder` with the prefilled request loaded into every row, in
  each of `--variants`: `fused` (the step's pieces compiled by inductor, FlexAttention's decoding kernel over
  the slots, one CUDA graph: the default on CUDA), `products` (the same with the attention as two batched
  products, the slot reduction in pieces: the default before `fused`) and `plain` (the step uncompiled, the
  reduction in one piece, one CUDA graph: the static step's first form);
each timed as the median of `--reps` runs of `--steps` tokens after warm-up, with the spread (max − min of the
runs). Full attention is also timed under stock transformers (SDPA, its own DynamicCache, same weights), the
ratio every headline is quoted against. A parity check compares the static step's first logits with the eager
step's (same cache, same token). Each static row also reports its bandwidth floor: the bytes a step must read
(`StaticDecoder.floor_nbytes`) over the device's copy rate measured in the same run. Prints one JSON line per
measurement and writes `decode_bench.{json,md}`.

    python -m bench.bench_decode --out leaderboards/perf
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bench.bench_gpu import build_model, environment, machine_state, make, randomize_ahn  # noqa: E402

# variant → the environment its StaticDecoder is built under (read at construction)
VARIANTS = {"fused": {"AHN_HARNESS_STEP_COMPILE": "1", "AHN_HARNESS_DECODE_SPLITS": "auto",
                      "AHN_HARNESS_DECODE_ATTENTION": "auto"},
            "products": {"AHN_HARNESS_STEP_COMPILE": "1", "AHN_HARNESS_DECODE_SPLITS": "auto",
                         "AHN_HARNESS_DECODE_ATTENTION": "products"},
            "plain": {"AHN_HARNESS_STEP_COMPILE": "0", "AHN_HARNESS_DECODE_SPLITS": "1",
                      "AHN_HARNESS_DECODE_ATTENTION": "products"}}


def column(batch: int, variant: str) -> str:
    return f"static_b{batch}" + ("" if variant == "fused" else f"_{variant}")


def timed(fn, steps: int, reps: int, warmup: int = 3) -> tuple[float, float]:
    """Median ms per call over `reps` runs of `steps` calls, and the spread of the runs."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - t0) / steps * 1e3)
    return statistics.median(runs), max(runs) - min(runs)


def emit(rows: list, rec: dict) -> None:
    rows.append(rec)
    print(json.dumps(rec), flush=True)


def bench_method(model, name: str, lengths: list[int], batches: list[int], steps: int, reps: int, chunk: int,
                 rows: list, variants: tuple[str, ...] = ("fused",)) -> None:
    from baselines import attach
    from baselines.engine import decode_step, prefill
    from baselines.static_decode import StaticDecoder

    method = make(name)
    with attach(model, method):
        if name.startswith("ahn"):
            randomize_ahn(method)
        for length in lengths:
            ids = torch.randint(0, 151000, (1, length), device="cuda")
            cache = method.new_cache(model)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            logits = prefill(model, method, cache, ids, chunk_size=chunk)
            torch.cuda.synchronize()
            prefill_s = time.perf_counter() - t0
            first = int(logits.argmax(-1))
            rec = {"method": name, "length": length, "prefill_s_once": prefill_s}
            # parity first: static (the first variant) and eager from the same cache and token
            t0 = time.perf_counter()
            with environment(VARIANTS[variants[0]]):
                dec = StaticDecoder(model, method, 1, length + (reps + 4) * steps + 512)
            dec.capture()
            rec["capture_s_b1"] = time.perf_counter() - t0  # compilation (first shape only) and the capture
            dec.load(0, cache, ids, first)
            dec.step()
            static_logits = dec.logits[0].clone()
            eager_logits = decode_step(model, method, cache, torch.tensor([first], device="cuda"))[0]
            rec["parity_rel_err"] = ((static_logits - eager_logits).norm() / eager_logits.norm()).item()
            rec["parity_argmax_equal"] = bool(static_logits.argmax() == eager_logits.argmax())
            tok = torch.tensor([first], device="cuda")
            rec["eager_ms"], rec["eager_spread"] = timed(lambda tok=tok, cache=cache: decode_step(
                model, method, cache, tok), steps, reps)
            del dec
            for b in batches:
                for variant in variants:
                    key = column(b, variant)
                    torch.cuda.empty_cache()
                    try:
                        with environment(VARIANTS[variant]):
                            dec = StaticDecoder(model, method, b, length + (reps + 4) * steps + 512)
                        dec.capture()
                        for row in range(b):
                            dec.load(row, cache, ids, first)
                        rec[f"{key}_ms"], rec[f"{key}_spread"] = timed(dec.step, steps, reps)
                        rec[f"floor_b{b}_gb"] = dec.floor_nbytes() / 1e9  # the same for every variant
                        del dec
                    except torch.OutOfMemoryError as exc:
                        rec[f"{key}_error"] = f"OOM: {str(exc).splitlines()[0][:100]}"
            rec["cache_gib"] = cache.nbytes() / 2**30
            emit(rows, rec)
            del cache, ids, logits
            torch.cuda.empty_cache()


def bench_stock(model, length: int, steps: int, reps: int, rows: list) -> None:
    """Stock transformers: one-shot SDPA prefill with its DynamicCache, then decode through it."""
    ids = torch.randint(0, 151000, (1, length), device="cuda")
    with torch.no_grad():
        model(ids[:, :4096], use_cache=True, logits_to_keep=1)  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(ids, use_cache=True, logits_to_keep=1)
        torch.cuda.synchronize()
        prefill_s = time.perf_counter() - t0
        cache = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        pos = [length]

        def step():
            o = model(tok, past_key_values=cache, use_cache=True,
                      position_ids=torch.tensor([[pos[0]]], device="cuda"))
            pos[0] += 1
            return o

        ms, spread = timed(step, steps, reps)
    emit(rows, {"method": "stock-transformers-full", "length": length, "prefill_s_once": prefill_s,
                "eager_ms": ms, "eager_spread": spread})


def copy_rate_gb_s(nbytes: int = 1 << 30, reps: int = 10) -> float:
    """The device's copy rate: bytes read plus bytes written per second by a device-to-device copy of `nbytes`,
    median of `reps` (the bandwidth a step that only reads its bytes once could reach)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    runs = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        runs.append(2 * nbytes / (start.elapsed_time(end) * 1e-3) / 1e9)
    del src, dst
    torch.cuda.empty_cache()
    return statistics.median(runs)


def write_report(rows: list, state: dict, out: Path, args) -> str:
    doc = {"machine": state, "model": "Qwen2.5-3B config, random bf16 weights", "sinks": 128, "window": 32640,
           "steps": args.steps, "reps": args.reps, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode_bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    batches = [int(b) for b in args.batches.split(",") if b]
    columns = [(column(b, v), f"static B={b}" + ("" if v == "fused" else f" ({v})")) for v in args.variants.split(",")
               for b in batches]
    stock = {r["length"]: r["eager_ms"] for r in rows if r["method"] == "stock-transformers-full"}
    head = "| method | prompt tokens | eager ms | " + " | ".join(f"{label} ms" for _, label in columns) + \
        " | static B=1 vs stock | parity (rel. err, argmax) |"
    lines = [f"# Decode benchmark ({state['device']}, {state['date']}, torch {state['torch']})", "",
             "Qwen2.5-3B config, random bf16 weights, 36 layers, 128 sinks + 32,640 window. Per step: median of "
             f"{args.reps} runs of {args.steps} steps, ± the spread (max − min) of the runs. Static B=b decodes b "
             "rows per step. Reproduce: `python -m bench.bench_decode`.", "",
             f"Machine before the run: {state.get('nvidia_smi', '')}; other GPU processes: "
             f"{state.get('other_gpu_processes') or 'none'}.", "", head,
             "|" + "---|" * (5 + len(columns))]
    for r in rows:
        if r["method"] == "stock-transformers-full":
            lines.append(f"| stock transformers (full, SDPA) | {r['length']:,} | {r['eager_ms']:.1f} ± "
                         f"{r['eager_spread']:.1f} |" + " |" * len(columns) + " | |")
            continue
        cells = []
        for key, _ in columns:
            if f"{key}_ms" in r:
                cells.append(f"{r[f'{key}_ms']:.2f} ± {r[f'{key}_spread']:.2f}")
            else:
                cells.append(r.get(f"{key}_error", ""))
        ratio = ""
        if 1 in batches and "static_b1_ms" in r and stock.get(r["length"]):
            ratio = f"{stock[r['length']] / r['static_b1_ms']:.1f}× faster"
        lines.append(f"| {r['method']} | {r['length']:,} | {r['eager_ms']:.1f} ± {r['eager_spread']:.1f} | "
                     + " | ".join(cells) + f" | {ratio} | {r['parity_rel_err']:.1e}, "
                     f"{'equal' if r['parity_argmax_equal'] else 'differs'} |")
    rate = state.get("copy_rate_gb_s")
    floors = [(r, b) for r in rows for b in batches if f"floor_b{b}_gb" in r]
    if rate and floors:
        lines += ["", f"The bandwidth floor: the bytes a step must read (every weight once, every row's K/V buffer "
                  f"and memory: `StaticDecoder.floor_nbytes`) over the copy rate measured in this run ({rate:,.0f} "
                  "GB/s, read + written, of a 1 GiB device copy).", "",
                  "| method | prompt tokens | B | bytes a step | floor ms | static ms | static / floor |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r, b in floors:
            floor_ms = r[f"floor_b{b}_gb"] / rate * 1e3
            step = r.get(f"{column(b, 'fused')}_ms")
            tail = f"{step:.2f} | {step / floor_ms:.2f}×" if step else " | "
            lines.append(f"| {r['method']} | {r['length']:,} | {b} | {r[f'floor_b{b}_gb']:.2f} GB | {floor_ms:.2f} | "
                         f"{tail} |")
    text = "\n".join(lines) + "\n"
    (out / "decode_bench.md").write_text(text)
    return text


def main() -> None:
    from baselines.prefill_chunk import DEFAULT_CHUNK

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("leaderboards/perf"))
    p.add_argument("--methods", default="ahn-gdn,swa,full")
    p.add_argument("--lengths", default="32768,131072")
    p.add_argument("--long", default="524288", help="extra lengths for ahn-gdn only (flatness), '' for none")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="prefill chunk (default: the engine's, "
                        f"{DEFAULT_CHUNK})")
    p.add_argument("--skip-stock", action="store_true")
    p.add_argument("--variants", default="fused,plain", help=f"static-step variants to time: {', '.join(VARIANTS)}")
    args = p.parse_args()
    state = machine_state()
    state["copy_rate_gb_s"] = copy_rate_gb_s()
    print(json.dumps(state), flush=True)
    model = build_model()
    rows: list = []
    lengths = [int(x) for x in args.lengths.split(",")]
    batches = [int(b) for b in args.batches.split(",") if b]
    if not args.skip_stock:
        bench_stock(model, max(lengths), args.steps, args.reps, rows)
        torch.cuda.empty_cache()
        write_report(rows, state, args.out, args)
    for name in args.methods.split(","):
        extra = [int(x) for x in args.long.split(",") if x] if name.startswith("ahn") else []
        bench_method(model, name, lengths + extra, batches, args.steps, args.reps, args.chunk, rows,
                     tuple(args.variants.split(",")))
        write_report(rows, state, args.out, args)
    print(write_report(rows, state, args.out, args))


if __name__ == "__main__":
    main()
