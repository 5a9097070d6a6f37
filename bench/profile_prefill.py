"""Where does a long prefill go? A torch-profiler breakdown and attention / memory-kernel microbenchmarks.

On the Qwen2.5-3B shape with random bf16 weights (as `bench/bench_gpu.py`), for each method: one warm-up
prefill (compiles FlexAttention and the fla kernels), then a profiled prefill of `--length` tokens. Prints the
top kernels by GPU time, the GPU-busy time against the wall time (the rest is host work and launch gaps), and
microbenchmarks of the attention variants one chunk of the prefill can use. Writes everything as JSON lines
to `--out` (default stdout only).

    python -m bench.profile_prefill --length 131072 --methods ahn-gdn,swa,full --out prof.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from baselines.prefill_chunk import DEFAULT_CHUNK  # noqa: E402
from bench.bench_gpu import build_model, make, qwen_config, randomize_ahn  # noqa: E402


def emit(out, rec: dict) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def cuda_ms(fn, reps: int = 7, warmup: int = 2) -> tuple[float, float]:
    """Median and spread (max - min) in ms of `fn()` timed with CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), max(times) - min(times)


def profile_method(model, name: str, length: int, chunk: int, top: int, out, shapes: bool = False) -> None:
    from torch.profiler import ProfilerActivity, profile

    from baselines import attach
    from baselines.engine import prefill

    method = make(name)
    with attach(model, method):
        if name.startswith("ahn"):
            randomize_ahn(method)
        warm = torch.randint(0, 151000, (1, 128 + 32640 + 2 * chunk + 17), device="cuda")
        prefill(model, method, method.new_cache(model), warm, chunk_size=chunk)
        ids = torch.randint(0, 151000, (1, length), device="cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
        torch.cuda.synchronize()
        plain = time.perf_counter() - t0
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=shapes) as prof:
            t0 = time.perf_counter()
            prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
            torch.cuda.synchronize()
            wall = time.perf_counter() - t0
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA" or e.self_device_time_total > 0]
    kernels = sorted(events, key=lambda e: e.self_device_time_total, reverse=True)
    busy = sum(e.self_device_time_total for e in kernels) / 1e6  # op rows and their kernels' rows: counted twice
    # the kernels alone: GPU-busy time against the wall, the rest is idle (launch gaps, host work, syncs)
    kernel_s = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") / 1e6
    rows = [{"name": e.key[:90], "gpu_ms": e.self_device_time_total / 1e3, "calls": e.count} for e in kernels[:top]]
    cpu = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    emit(out, {"profile": name, "length": length, "chunk": chunk, "wall_s": wall, "wall_unprofiled_s": plain,
               "gpu_busy_s": busy, "gpu_kernel_s": kernel_s, "top_kernels": rows,
               "top_cpu": [{"name": e.key[:80], "cpu_ms": e.self_cpu_time_total / 1e3, "calls": e.count}
                           for e in cpu]})
    print(f"\n== {name} {length} tokens chunk {chunk}: wall {wall:.2f} s (unprofiled {plain:.2f} s), "
          f"GPU kernels {kernel_s:.2f} s (ops and kernels summed: {busy:.2f} s)", flush=True)
    for r in rows:
        print(f"  {r['gpu_ms']:9.1f} ms  {r['calls']:6d}  {r['name']}")
    if shapes:  # which calls of the copying and elementwise ops cost the GPU time, by their input shapes
        ops = [e for e in prof.key_averages(group_by_input_shape=True)
               if e.key.startswith("aten::") and e.device_time_total > 0]
        ops = sorted(ops, key=lambda e: e.device_time_total, reverse=True)[:top]
        by_shape = [{"op": e.key, "shapes": str(e.input_shapes)[:160], "gpu_ms": e.device_time_total / 1e3,
                     "calls": e.count} for e in ops]
        emit(out, {"profile_shapes": name, "length": length, "chunk": chunk, "top_ops": by_shape})
        print("  by op and input shapes (GPU time of the op's kernels, children included):")
        for r in by_shape:
            print(f"  {r['gpu_ms']:9.1f} ms  {r['calls']:6d}  {r['op']} {r['shapes']}")


def attention_micro(out) -> None:
    """One chunk's attention: FlexAttention (the engine's path) vs SDPA variants, and the fla memory kernels."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.bias import causal_lower_right
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    flex = torch.compile(flex_attention)
    H, Hkv, dh = 16, 2, 128

    def rnd(*shape):
        return torch.randn(*shape, device="cuda", dtype=torch.bfloat16)

    for c, n_old, sinks, window in ((4096, 32768, 128, 32640), (4096, 126976, 0, 1 << 40),
                                    (16384, 32768, 128, 32640), (16384, 114688, 0, 1 << 40)):
        kv = n_old + c
        q, k, v = rnd(1, H, c, dh), rnd(1, Hkv, kv, dh), rnd(1, Hkv, kv, dh)
        first = 4 * window if window < (1 << 39) else 0  # positions of the non-sink run
        n_s = sinks

        def mask_mod(b, h, qi, ki, n_s=n_s, first=first, n_old=n_old, sinks=sinks, window=window):
            pos = torch.where(ki < n_s, ki, ki - n_s + first)
            t = qi + first + n_old - n_s
            return (pos <= t) & ((pos < sinks) | (t - pos < window))

        bm = create_block_mask(mask_mod, None, None, c, kv, device="cuda", _compile=True)
        useful = 0  # attention FLOPs of the visible pairs only
        vis_per_q = min(window, n_old + 1) + (sinks if window < (1 << 39) else 0)
        useful = 4 * c * vis_per_q * H * dh
        rec = {"micro": "attention", "chunk": c, "kv": kv, "windowed": window < (1 << 39)}
        ms, sp = cuda_ms(lambda: flex(q, k, v, block_mask=bm, enable_gqa=True))  # noqa: B023 (called at once)
        rec["flex_ms"], rec["flex_spread"], rec["flex_tflops"] = ms, sp, useful / ms / 1e9
        if window >= (1 << 39):
            bias = causal_lower_right(c, kv)
            for label, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                                   ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
                try:
                    with sdpa_kernel(backend):
                        kk = k if label == "flash" else k.repeat_interleave(H // Hkv, 1)
                        vv = v if label == "flash" else v.repeat_interleave(H // Hkv, 1)
                        ms, sp = cuda_ms(lambda kk=kk, vv=vv, label=label, q=q, bias=bias: F.scaled_dot_product_attention(
                            q, kk, vv, attn_mask=bias, enable_gqa=label == "flash"))
                    rec[f"{label}_lr_ms"], rec[f"{label}_lr_tflops"] = ms, useful / ms / 1e9
                except Exception as exc:  # noqa: BLE001 - report which backends cannot run this
                    rec[f"{label}_lr_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        emit(out, rec)

    # one-shot causal over 131,072 tokens (what stock transformers + SDPA does for full attention)
    n = 131072
    q, k, v = rnd(1, H, n, dh), rnd(1, Hkv, n, dh), rnd(1, Hkv, n, dh)
    useful = 4 * n * n / 2 * H * dh
    rec = {"micro": "attention_oneshot_causal", "tokens": n}
    for label, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel(backend):
                ms, sp = cuda_ms(lambda label=label: F.scaled_dot_product_attention(
                    q, k if label == "flash" else k.repeat_interleave(8, 1),
                    v if label == "flash" else v.repeat_interleave(8, 1), is_causal=True,
                    enable_gqa=label == "flash"), reps=3, warmup=1)
            rec[f"{label}_ms"], rec[f"{label}_tflops"] = ms, useful / ms / 1e9
        except Exception as exc:  # noqa: BLE001
            rec[f"{label}_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    emit(out, rec)
    del q, k, v

    # fla gated delta rule on one chunk of evicted tokens (16 heads of 128, fp32 state in and out)
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule

    for t in (4096, 16384):
        q, k, v = rnd(1, t, H, dh), rnd(1, t, H, dh), rnd(1, t, H, dh)
        q, k = F.normalize(q.float(), dim=-1).bfloat16(), F.normalize(k.float(), dim=-1).bfloat16()
        beta = torch.rand(1, t, H, device="cuda", dtype=torch.bfloat16)
        g = -torch.rand(1, t, H, device="cuda") * 0.01
        s0 = torch.zeros(1, H, dh, dh, device="cuda")
        ms, sp = cuda_ms(lambda q=q, k=k, v=v, beta=beta, g=g, s0=s0: chunk_gated_delta_rule(
            q=q, k=k, v=v, beta=beta, g=g, initial_state=s0, output_final_state=True))
        emit(out, {"micro": "fla_chunk_gdn", "tokens": t, "ms": ms, "spread": sp})


def flex_options_micro(out) -> None:
    """The windowed chunk (4,096 queries over 128 + 32,640 + 4,096 keys) under FlexAttention kernel options."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    flex = torch.compile(flex_attention)
    H, Hkv, dh, c, n_old, sinks, window = 16, 2, 128, 4096, 32768, 128, 32640
    kv = n_old + c
    q = torch.randn(1, H, c, dh, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, Hkv, kv, dh, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, Hkv, kv, dh, device="cuda", dtype=torch.bfloat16)
    first = 4 * window

    def mask_mod(b, h, qi, ki):
        pos = torch.where(ki < sinks, ki, ki - sinks + first)
        t = qi + first + n_old - sinks
        return (pos <= t) & ((pos < sinks) | (t - pos < window))

    useful = 4 * c * (window + sinks) * H * dh
    variants = {"default": None,
                "m128n128w8s2": {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 2},
                "m128n64w8s3": {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3},
                "m128n64w4s3": {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
                "m64n128w4s3": {"BLOCK_M": 64, "BLOCK_N": 128, "num_warps": 4, "num_stages": 3},
                "tma": {"USE_TMA": True},
                "m128n128w8s2tma": {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 2, "USE_TMA": True}}
    for label, opts in variants.items():
        rec = {"micro": "flex_options", "variant": label}
        try:
            bs = (opts or {}).get("BLOCK_M", 128), (opts or {}).get("BLOCK_N", 128)
            bm = create_block_mask(mask_mod, None, None, c, kv, device="cuda", BLOCK_SIZE=bs, _compile=True)
            ms, sp = cuda_ms(lambda bm=bm, opts=opts: flex(q, k, v, block_mask=bm, enable_gqa=True,
                                                           kernel_options=opts))
            rec.update(ms=ms, spread=sp, tflops=useful / ms / 1e9)
        except Exception as exc:  # noqa: BLE001 - record which options cannot run
            rec["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        emit(out, rec)


def split_micro(out) -> None:
    """The split path's pieces on one full-window chunk (4,096 queries, 128 sinks + 32,640 window, Qwen2.5-3B
    heads): the unmasked piece A with its grouped keys given to cuDNN as they are (the engine's path) against A
    with its keys expanded to every query head (the split path's earlier form); the pieces' combination eager
    against compiled (`split_attention.combine`, as AHN_HARNESS_FUSED_LAYERS runs it)."""
    from baselines import fused_layers
    from baselines import split_attention as split

    H, Hkv, dh, c, n_a = 16, 2, 128, 4096, 128 + 32640 - 4096
    rnd = lambda *shape: torch.randn(*shape, device="cuda", dtype=torch.bfloat16)  # noqa: E731
    q, k, v = rnd(1, H, c, dh), rnd(1, Hkv, n_a, dh), rnd(1, Hkv, n_a, dh)
    scale = dh ** -0.5

    def expanded():
        return split.piece(q, k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1), scale,
                           causal=False, kernel="cudnn")

    rec = {"micro": "split_piece_a", "chunk": c, "keys": n_a}
    native = split.piece(q, k, v, scale, causal=False, kernel="cudnn")
    rec["native_vs_expanded_rel_err"] = ((native[0].float() - expanded()[0].float()).norm()
                                         / expanded()[0].float().norm()).item()
    rec["native_ms"], rec["native_spread"] = cuda_ms(lambda: split.piece(q, k, v, scale, causal=False,
                                                                         kernel="cudnn"))
    rec["expanded_ms"], rec["expanded_spread"] = cuda_ms(expanded)
    emit(out, rec)

    lse = lambda rows: torch.randn(1, H, rows, device="cuda") + 8  # noqa: E731
    parts = [rnd(1, H, c, dh), lse(c), rnd(1, H, c, dh), lse(c), rnd(1, H, c - 1, dh), lse(c - 1)]
    fused = fused_layers.compile_shared(split.combine)
    ref = split.combine(*parts)
    rec = {"micro": "split_combine", "chunk": c,
           "rel_err": ((fused(*parts).float() - ref.float()).norm() / ref.float().norm()).item()}
    rec["compiled_ms"], rec["compiled_spread"] = cuda_ms(lambda: fused(*parts))
    rec["eager_ms"], rec["eager_spread"] = cuda_ms(lambda: split.combine(*parts))
    emit(out, rec)


def fusion_micro(out) -> None:
    """What fusing the elementwise work of one decoder layer could give: Qwen2.5-3B's RMSNorm and MLP on one chunk
    of 4,096 tokens, eager (as the harness runs them) against inductor-compiled, in the same run."""
    from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP, Qwen2RMSNorm

    cfg = qwen_config()
    x = torch.randn(1, 4096, cfg.hidden_size, device="cuda", dtype=torch.bfloat16)
    with torch.device("cuda"), torch.no_grad():
        for label, module in (("rms_norm", Qwen2RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)),
                              ("mlp", Qwen2MLP(cfg))):
            module = module.to(torch.bfloat16)
            for prm in module.parameters():  # projections small, norm weights near 1
                if prm.ndim > 1:
                    prm.normal_(0, 0.02)
                else:
                    prm.uniform_(0.5, 1.5)
            fused = torch.compile(module)
            ref = module(x).float()
            rec = {"micro": "fusion", "what": label, "tokens": x.shape[1],
                   "rel_err": ((fused(x).float() - ref).norm() / ref.norm()).item()}
            rec["eager_ms"], rec["eager_spread"] = cuda_ms(lambda m=module: m(x))
            rec["compiled_ms"], rec["compiled_spread"] = cuda_ms(lambda m=fused: m(x))
            emit(out, rec)


def checks(out) -> None:
    a = torch.randn(2, 8, 128, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(2, 128, 4096, device="cuda", dtype=torch.bfloat16)
    rec = {"check": "bmm_out_dtype"}
    try:
        r = torch.bmm(a, b, out_dtype=torch.float32)
        rec["ok"] = str(r.dtype)
    except Exception as exc:  # noqa: BLE001
        rec["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
    emit(out, rec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--length", type=int, default=131072)
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help=f"prefill chunk (default: the engine's, "
                                                                    f"{DEFAULT_CHUNK})")
    p.add_argument("--methods", default="ahn-gdn,swa,full")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path)
    p.add_argument("--skip-micro", action="store_true")
    p.add_argument("--flex-options", action="store_true", help="also time FlexAttention kernel options")
    p.add_argument("--shapes", action="store_true", help="also rank the ops' GPU time by their input shapes")
    args = p.parse_args()
    out = args.out.open("a") if args.out else None
    emit(out, {"device": torch.cuda.get_device_name(), "torch": torch.__version__})
    checks(out)
    split_micro(out)  # seconds: run even with --skip-micro
    fusion_micro(out)
    if not args.skip_micro:
        attention_micro(out)
    if args.flex_options:
        flex_options_micro(out)
    model = build_model()
    for name in args.methods.split(","):
        profile_method(model, name, args.length, args.chunk, args.top, out, args.shapes)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
