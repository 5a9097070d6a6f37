"""GPU benchmark: prefill time / peak memory and decode time per token on a Qwen2.5-3B-shaped model.

Random bf16 weights (speed does not depend on weight values); AHN output maps are random too, so the memory
path really runs. Methods: full, swa and ahn-gdn (paper setting: 128 sinks + 32,640 window). Also checks the
fast path (FlexAttention + fla kernels) against the reference path (SDPA with an explicit mask + PyTorch
chunked recurrence) on the same model.

    python -m bench.bench_gpu --out leaderboards/perf        # on an H100; writes gpu_bench.{json,md}
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from unittest import mock

import torch

from baselines import fast_paths


@contextlib.contextmanager
def environment(settings: dict[str, str]):
    """Set these environment variables inside the block and restore what was there; the fast paths' switches
    (read once, `baselines/fast_paths.py`) are read again on entry and on exit."""
    with mock.patch.dict(os.environ, settings):
        fast_paths.reset()
        try:
            yield
        finally:
            fast_paths.reset()


def qwen_config(layers: int | None = None):
    """Qwen2.5-3B-Instruct's config (embedded, no Hub), optionally with fewer layers."""
    from transformers import Qwen2Config

    from baselines.model_configs import hf_config

    cfg = dict(hf_config("Qwen2.5-3B-Instruct"))
    if layers:
        cfg["num_hidden_layers"] = layers
    return Qwen2Config(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})


def build_model(layers: int | None = None):
    from transformers import AutoModelForCausalLM

    config = qwen_config(layers)
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


def make(name: str, sinks: int = 128, window: int = 32640):
    from baselines import make_method

    if name == "full":
        return make_method("full")
    return make_method(name, sinks=sinks, window=window)


def machine_state() -> dict:
    """Device, clocks and whether anything else runs on the GPU (a benchmark wants an idle machine)."""
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    try:
        import transformers

        out["transformers"] = transformers.__version__
        import fla

        out["fla"] = fla.__version__
    except Exception:  # noqa: BLE001 - record what imports
        pass
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,clocks.max.sm,utilization.gpu,"
                            "memory.used,power.draw", "--format=csv,noheader"], capture_output=True, text=True,
                           timeout=20).stdout.strip()
        apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
        out["nvidia_smi"], out["other_gpu_processes"] = q, apps
    except (OSError, subprocess.SubprocessError) as exc:
        out["nvidia_smi"] = f"unavailable: {exc}"
    return out


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


def parity(model, length: int, chunk: int, window: int) -> dict:
    """ahn-gdn logits: fast path (FlexAttention + fla) vs reference path (masked SDPA + PyTorch recurrence).

    Both paths run in fp32 (they must then agree to float rounding: any larger gap is a bug) and in bf16, each
    against the fp32 reference. Two bf16 implementations of a 36-layer model differ by bf16 rounding, not by
    algorithm, so the bf16 figure to read is the fast path's error beside the bf16 reference's own error."""
    from baselines import attach

    ids = torch.randint(0, 151000, (1, length), device="cuda", generator=torch.Generator("cuda").manual_seed(5))
    out = {}
    # RoPE frequencies are fp32 buffers in both rounds (a plain .to(bf16) would round them)
    rope = {name: buf.clone() for name, buf in model.named_buffers() if "inv_freq" in name}
    for dtype in (torch.float32, torch.bfloat16):
        model.to(dtype)  # bf16 -> fp32 -> bf16 is exact: the weights are the same in both rounds
        for name, buf in rope.items():
            owner, attr = model.get_submodule(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]
            setattr(owner, attr, buf.clone())
        for label, flex, backend in (("fast", "1", "auto"), ("reference", "0", "reference")):
            os.environ["AHN_HARNESS_FLEX"] = flex
            fast_paths.reset()  # the switches are read once: read them again
            method = make("ahn-gdn", window=window)
            method.backend = backend
            torch.manual_seed(0)  # cells are built at attach: same seed, same cells on both paths
            with attach(model, method):
                randomize_ahn(method)
                seconds, _, _, logits = timed_prefill(model, method, ids, chunk)
            out[f"{label}_{str(dtype).split('.')[-1]}"] = logits.float()
            print(f"[parity] {label} {dtype}: {seconds:.1f} s", flush=True)
            del logits
            torch.cuda.empty_cache()
    os.environ["AHN_HARNESS_FLEX"] = "1"
    fast_paths.reset()
    ref = out["reference_float32"]

    def rel(a: str) -> float:
        return ((out[a] - ref).norm() / ref.norm()).item()

    def agree(a: str) -> float:
        return (out[a].argmax(-1) == ref.argmax(-1)).float().mean().item()

    return {"length": length, "sinks": 128, "window": window, "against": "reference path in fp32",
            "rel_err_fast_fp32": rel("fast_float32"), "rel_err_fast_bf16": rel("fast_bfloat16"),
            "rel_err_reference_bf16": rel("reference_bfloat16"),
            "rel_err_fast_vs_reference_bf16": ((out["fast_bfloat16"] - out["reference_bfloat16"]).norm()
                                               / out["reference_bfloat16"].norm()).item(),
            "argmax_agree_fast_bf16": agree("fast_bfloat16"), "argmax_agree_fast_fp32": agree("fast_float32")}


def write_report(rows: list[dict], par: dict | None, out: Path, chunk: int, layers: int,
                 device: str | None = None, date: str | None = None, torch_version: str | None = None,
                 machine: dict | None = None) -> str:
    """Write ``gpu_bench.json`` and ``gpu_bench.md`` under ``out`` (rows so far; parity when measured; the machine's
    state before the run when known)."""
    doc = {
        "device": device or torch.cuda.get_device_name(), "date": date or datetime.date.today().isoformat(),
        "torch": torch_version or torch.__version__, "model": "Qwen2.5-3B config, random bf16 weights",
        "layers": layers, "chunk": chunk, "sinks": 128, "window": 32640, "rows": rows, "parity": par,
        **({"machine": machine} if machine else {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"# GPU benchmark ({doc['device']}, {doc['date']}, torch {doc['torch']})", "",
             f"{doc['model']}, {layers} layers, prefill chunk {chunk} unless stated, sinks 128 + window 32,640. "
             "Reproduce: `python -m bench.bench_gpu`.", "",
             *([f"Machine before the run: {machine.get('nvidia_smi', '')}; other GPU processes: "
                f"{machine.get('other_gpu_processes') or 'none'}.", ""] if machine else []),
             "| method | window attention | fused layers | fused rotary | chunk graphs | chunk | prompt tokens | prefill s "
             "| peak GiB | cache GiB | decode ms/token | decode, eager |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r.get("chunk", chunk)
        a = r.get("attention", "flex")
        a = " | ".join([a] + ["on" if r.get(k, "0") != "0" else "off"  # rows from before a switch: off
                              for k in ("fused_layers", "fused_rotary", "chunk_graphs")])
        if "error" in r:
            lines.append(f"| {r['method']} | {a} | {c} | {r['length']:,} | {r['error']} | | | | |")
        else:
            d = f"{r['decode_ms']:.1f}" if r["decode_ms"] else ""
            e = f"{r['decode_eager_ms']:.1f}" if r.get("decode_eager_ms") else ""
            sp = f" ± {r['prefill_spread_s']:.2f}" if "prefill_spread_s" in r else ""
            lines.append(f"| {r['method']} | {a} | {c} | {r['length']:,} | {r['prefill_s']:.2f}{sp} | {r['peak_gib']:.1f} | "
                         f"{r['cache_gib']:.2f} | {d} | {e} |")
    if par is None:
        lines += ["", "Fast path vs reference: not measured in this run."]
    else:
        lines += ["", f"Fast path (FlexAttention + fla) vs reference path (masked SDPA + PyTorch recurrence), ahn-gdn "
                  f"with random output maps, {par['length']:,} tokens (sinks 128 + window {par.get('window', 32640):,}, "
                  f"chunk {chunk:,}), relative error of the last logits against the "
                  "reference path in fp32:", "",
                  "| path | rel. error | argmax agrees |", "|---|---:|---:|",
                  f"| fast, fp32 | {par['rel_err_fast_fp32']:.2e} | {par['argmax_agree_fast_fp32']:.0%} |",
                  f"| fast, bf16 | {par['rel_err_fast_bf16']:.2e} | {par['argmax_agree_fast_bf16']:.0%} |",
                  f"| reference, bf16 (bf16's own error) | {par['rel_err_reference_bf16']:.2e} | |",
                  "", f"Fast bf16 vs reference bf16: {par['rel_err_fast_vs_reference_bf16']:.2e}."]
    lines += ["", "Decode: median of 20 steps after 4 warm-up steps, one token at a time. For AHN, `decode ms/token` "
              "replays each layer's memory step as a CUDA graph (the default, `ahn/decode_graphs.py`); `decode, "
              "eager` launches the same kernels one by one (`AHN_HARNESS_DECODE_GRAPHS=0`)."]
    text = "\n".join(lines) + "\n"
    (out / "gpu_bench.md").write_text(text)
    return text


def from_log(log: Path, out: Path, chunk: int, device: str, date: str, torch_version: str) -> str:
    """Re-render the report from the JSON rows a run printed (e.g. one cut short by a time limit)."""
    rows, par = [], None
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "method" in rec:
                rows.append(rec)
            elif "rel_err_fast_bf16" in rec:
                par = rec
    return write_report(rows, par, out, chunk, 36, device, date, torch_version)


def main() -> None:
    from baselines.prefill_chunk import DEFAULT_CHUNK

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("leaderboards/perf"))
    parser.add_argument("--lengths", default="8192,32768,65536,131072")
    parser.add_argument("--methods", default="full,swa,ahn-gdn")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="prefill chunk (default: the engine's, "
                        f"{DEFAULT_CHUNK})")
    parser.add_argument("--parity-length", type=int, default=16384)
    parser.add_argument("--parity-window", type=int, default=3968,
                        help="window of the parity check (smaller than the bench's, so the slow fp32 reference path "
                             "fits a short run while most tokens go through the memory)")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--layers", type=int, default=None, help="fewer layers for a quick try")
    parser.add_argument("--extra-chunks", default="4096,8192",
                        help="chunk sizes also timed for ahn-gdn at the longest length ('' for none)")
    parser.add_argument("--reps", type=int, default=5, help="prefill timings per row (median and spread)")
    parser.add_argument("--full-chunk", type=int, default=None, help="prefill chunk of full attention "
                        "(e.g. 131072: one causal pass through cuDNN)")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--window-attention", default="split",
                        help="AHN_HARNESS_WINDOW_ATTENTION settings to time each method under, e.g. split,flex "
                             "(baselines/split_attention.py)")
    parser.add_argument("--fused-layers", default="1",
                        help="AHN_HARNESS_FUSED_LAYERS settings to time each method under, e.g. 0,1 "
                             "(baselines/fused_layers.py)")
    parser.add_argument("--chunk-graphs", default="0",
                        help="AHN_HARNESS_CHUNK_GRAPHS settings to time AHN methods under, e.g. 0,1 "
                             "(ahn/chunk_graphs.py)")
    parser.add_argument("--fused-rotary", default="1",
                        help="AHN_HARNESS_FUSED_ROTARY settings to time each method under, e.g. 0,1 (the rotary "
                             "embedding compiled inside the fused layers, baselines/fused_layers.py)")
    parser.add_argument("--from-log", type=Path, help="only re-render the report from a run's printed rows")
    parser.add_argument("--device-name", default="NVIDIA H100 80GB HBM3", help="with --from-log")
    parser.add_argument("--date", default=None, help="with --from-log (default today)")
    parser.add_argument("--torch-version", default=None, help="with --from-log")
    args = parser.parse_args()
    if args.from_log:
        print(from_log(args.from_log, args.out, args.chunk, args.device_name, args.date or
                       datetime.date.today().isoformat(), args.torch_version or "unknown"))
        return

    from baselines import attach

    machine = machine_state()  # before anything of ours runs: clocks, and whether another process uses the GPU
    model = build_model(args.layers)
    lengths = [int(x) for x in args.lengths.split(",")]
    rows = []
    par = None
    settings = args.window_attention.split(",")
    # full attention has no window and no memory: it runs once per fused-layers setting, under the first window
    # and chunk-graph settings; methods without AHN memory likewise under the first chunk-graph setting
    # and the rotary switch acts only inside the fused layers: with them off, under its first setting alone
    graph_settings, rotary_settings = args.chunk_graphs.split(","), args.fused_rotary.split(",")
    for fused, rotary, graphs, name, attention in [
            (f, r, g, n, a) for f in args.fused_layers.split(",") for r in rotary_settings
            for g in graph_settings for a in settings for n in args.methods.split(",")
            if (n != "full" or a == settings[0]) and (n.startswith("ahn") or g == graph_settings[0])
            and (f != "0" or r == rotary_settings[0])]:
        method = make(name)
        switches = {"attention": attention, "fused_layers": fused, "fused_rotary": rotary, "chunk_graphs": graphs}
        with attach(model, method), environment({"AHN_HARNESS_WINDOW_ATTENTION": attention,
                                                 "AHN_HARNESS_FUSED_LAYERS": fused,
                                                 "AHN_HARNESS_FUSED_ROTARY": rotary,
                                                 "AHN_HARNESS_CHUNK_GRAPHS": graphs}):
            if name.startswith("ahn"):
                randomize_ahn(method)
            # compile flex / fla kernels first, eviction into memory included (it starts past sinks + window)
            # (three evicting chunks: the memory update's chunk graphs capture on a layer's second one)
            warm = torch.randint(0, 151000, (1, 128 + 32640 + 3 * args.chunk + 17), device="cuda")
            timed_prefill(model, method, warm, args.chunk)
            chunk = args.full_chunk if name == "full" and args.full_chunk else args.chunk
            if chunk != args.chunk:
                timed_prefill(model, method, warm, chunk)
            for length in lengths:
                ids = torch.randint(0, 151000, (1, length), device="cuda")
                try:
                    # what is allocated before the prefill (the weights, plus anything an earlier row left behind)
                    resident = torch.cuda.memory_allocated() / 2**30
                    runs = []
                    for _ in range(args.reps):
                        cache = None  # the peak is one prefill's: the last run's cache is not kept through the next
                        seconds, peak, cache, _ = timed_prefill(model, method, ids, chunk)
                        runs.append(seconds)
                    seconds, spread = statistics.median(runs), max(runs) - min(runs)
                    decode = eager = None
                    if length in (8192, 32768, 131072) and not args.skip_decode:
                        if name.startswith("ahn"):
                            method.decode_graphs = False
                            eager = timed_decode(model, method, cache) * 1e3
                            method.decode_graphs = True
                        decode = timed_decode(model, method, cache) * 1e3
                    row = {"method": name, **switches, "length": length,
                           "chunk": chunk, "prefill_s": seconds,
                           "prefill_spread_s": spread, "reps": args.reps, "runs_s": runs, "peak_gib": peak / 2**30,
                           "resident_before_gib": resident,
                           "cache_gib": cache.nbytes() / 2**30, "decode_ms": decode, "decode_eager_ms": eager}
                except torch.OutOfMemoryError as exc:
                    row = {"method": name, **switches, "length": length,
                           "error": f"OOM: {str(exc).splitlines()[0]}"}
                    torch.cuda.empty_cache()
                rows.append(row)
                print(json.dumps(row), flush=True)
                write_report(rows, par, args.out, args.chunk, args.layers or 36, machine=machine)  # a timeout keeps what ran
                del ids
                torch.cuda.empty_cache()
            if name.startswith("ahn") and args.extra_chunks:
                ids = torch.randint(0, 151000, (1, max(lengths)), device="cuda")
                for chunk in (int(x) for x in args.extra_chunks.split(",")):
                    timed_prefill(model, method, ids[:, : 128 + 32640 + 2 * chunk + 17], chunk)  # compile
                    cache = None
                    seconds, peak, cache, _ = timed_prefill(model, method, ids, chunk)
                    row = {"method": name, **switches, "length": max(lengths),
                           "chunk": chunk, "prefill_s": seconds,
                           "peak_gib": peak / 2**30, "cache_gib": cache.nbytes() / 2**30, "decode_ms": None}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    write_report(rows, par, args.out, args.chunk, args.layers or 36, machine=machine)
                del ids
                torch.cuda.empty_cache()
    if not args.skip_parity:
        par = parity(model, args.parity_length, args.chunk, args.parity_window)
        print(json.dumps(par), flush=True)
    print(write_report(rows, par, args.out, args.chunk, args.layers or 36, machine=machine))


if __name__ == "__main__":
    main()
