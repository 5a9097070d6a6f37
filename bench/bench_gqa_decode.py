"""One static decode step for full attention at Qwen2.5-Coder-0.5B's shape, per attention setting, against the
bandwidth floor.

The model: a Qwen2Config of Qwen2.5-0.5B's dimensions (24 layers, hidden 896, intermediate 4,864, 14 query
heads over 2 KV heads of 64, vocab 151,936, RoPE theta 1e6, tied embeddings) with random bf16 weights, no
download. Each case builds the real `baselines.static_decode.StaticDecoder` for full attention (compiled by inductor and
captured as one CUDA graph, as `harness run --decode static` does), fills every row's K/V buffer with random
values and marks `prompt` slots valid (speed does not depend on the values; no prefill), and times the graph's
replay: the median ms a step over `--reps` runs of a few steps (as many as take ~0.2 s), with the min–max of
the runs. The floor is the bytes a step must read over the device-to-device copy rate measured in this run:
the K/V buffers alone (`kv floor`) and with the weights (`StaticDecoder.floor_nbytes`, `floor`).

The settings (`AHN_HARNESS_DECODE_ATTENTION`, `AHN_HARNESS_FLEX_DECODE`): `flex` (FlexAttention; this model's
group of 7 query heads per KV head folded into the query rows, so inductor lowers it to the decoding kernel:
`static_decode.group_as_rows`), `flex-heads` (the group as query heads, the call before the fold: inductor's
main FlexAttention kernel), `products` (two batched products, the slot reduction in pieces of 1,024), flex
with other kernel options (SPLIT_KV twice / half the step's rule, BLOCK_N=128, torch's own choice) and
flex-heads with torch's own options (how much of the main kernel's time the decoding options cost). Cases
run in order of importance (B = 5 at 128k first, the symptom's shape) and the results are written after each;
no case but the first starts after `--budget-s` seconds. Each case's first-step logits are compared with
`products` at the same B and prompt where both ran (the same random buffers), and the kernel inductor picked
is recorded (torch's "Use flex decoding" decision).

    python -m bench.bench_gqa_decode --out $OUT        # on a GPU; ~150 s on an H100 with compilation
    python -m bench.bench_gqa_decode --tiny --out /tmp/x  # a 2-layer model on the CPU, uncompiled (tests)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import logging
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

K = 1024
FULL_SHAPE = {"num_hidden_layers": 24, "hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14,
              "num_key_value_heads": 2, "vocab_size": 151936, "rope_theta": 1_000_000.0,
              "max_position_embeddings": 131072, "tie_word_embeddings": True, "rms_norm_eps": 1e-6}
TINY_SHAPE = {"num_hidden_layers": 2, "hidden_size": 112, "intermediate_size": 128, "num_attention_heads": 14,
              "num_key_value_heads": 2, "vocab_size": 300, "rope_theta": 1_000_000.0,
              "max_position_embeddings": 4096, "tie_word_embeddings": True, "rms_norm_eps": 1e-6}


def build_model(tiny: bool, device: torch.device) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(**(TINY_SHAPE if tiny else FULL_SHAPE))
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if tiny else torch.bfloat16,
                                                 attn_implementation="sdpa")
    return model.eval()


def cases(batches: list[int], prompts: list[int], splits_rule) -> list[dict]:
    """(batch, prompt, setting, flex options) in order of importance; `splits_rule(b)` is the step's SPLIT_KV."""
    top, mid = max(prompts), sorted(prompts)[len(prompts) // 2]
    b0 = batches[len(batches) // 2]  # the symptom's B = 5 with the default batches
    out: list[dict] = []

    def add(b: int, p: int, setting: str, flex: str | None = None, label: str | None = None) -> None:
        case = {"batch": b, "prompt": p, "setting": setting, "flex_decode": flex, "label": label or setting}
        if case not in out:
            out.append(case)

    for setting in ("flex", "flex-heads", "products"):
        add(b0, top, setting)
    for b in batches:
        for setting in ("flex", "products"):
            add(b, top, setting)
    base = "BLOCK_N=64,num_stages=3,num_warps=2"
    rule = splits_rule(b0)
    add(b0, top, "flex", f"{base},SPLIT_KV={rule * 2}", f"flex SPLIT_KV={rule * 2}")
    add(b0, top, "flex", f"{base},SPLIT_KV={max(rule // 2, 1)}", f"flex SPLIT_KV={max(rule // 2, 1)}")
    add(b0, top, "flex", "BLOCK_N=128,num_stages=3,num_warps=2", "flex BLOCK_N=128")
    add(b0, top, "flex", "default", "flex torch default")
    add(b0, top, "flex-heads", "default", "flex-heads torch default")  # the main kernel with its own tile
    for p in sorted(prompts, reverse=True)[1:]:
        for b in batches:
            for setting in ("flex", "products"):
                add(b, p, setting)
    for p in (mid, min(prompts)):
        add(b0, p, "flex-heads")
    return out


def copy_rate_gb_s(device: torch.device, nbytes: int, reps: int = 10) -> float:
    """Bytes read plus written per second by a device-to-device copy of `nbytes`, median of `reps`."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    runs = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dst.copy_(src)
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) * 1e-3
        else:
            t0 = time.perf_counter()
            dst.copy_(src)
            seconds = time.perf_counter() - t0
        runs.append(2 * nbytes / seconds / 1e9)
    del src, dst
    return statistics.median(runs)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Where inductor logs its choice of FlexAttention kernel: torch 2.13's module, and the one of releases before it
# moved into kernel/flex/.
FLEX_DECODING_LOGGERS = ("torch._inductor.kernel.flex.flex_decoding", "torch._inductor.kernel.flex_decoding")


class KernelChoice(logging.Handler):
    """Records inductor's "Use flex decoding <bool>" decisions (logged at DEBUG) while it is installed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.decisions: list[bool] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("Use flex decoding "):
            self.decisions.append(msg.split()[3].rstrip(",") == "True")


@contextlib.contextmanager
def kernel_choices():
    """A `KernelChoice` listening to inductor's FlexAttention lowering inside the block."""
    chooser = KernelChoice()
    loggers = [logging.getLogger(name) for name in FLEX_DECODING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(chooser)
    try:
        yield chooser
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(chooser)
            lg.setLevel(level)


def fill(dec, prompt: int, vocab: int) -> None:
    """Every row as if it had `prompt` tokens: random K/V in every slot (seeded), the first `prompt` valid."""
    g = torch.Generator(device=dec.device).manual_seed(0)
    for t in (*dec.k, *dec.v):
        t.copy_(torch.randn(t.shape, generator=g, device=dec.device, dtype=torch.float32).to(t.dtype))
    dec.valid.zero_()
    dec.valid[:, :prompt] = True
    dec.pos.fill_(prompt)
    dec.tok.copy_(torch.randint(0, vocab, dec.tok.shape, generator=g, device=dec.device))
    dec.seen.zero_()


def time_case(model, case: dict, steps_cap: int, reps: int, target_s: float) -> tuple[dict, torch.Tensor]:
    from baselines import make_method
    from baselines.static_decode import StaticDecoder
    from bench.bench_gpu import environment

    device = next(model.parameters()).device
    env = {"AHN_HARNESS_DECODE_ATTENTION": case["setting"]}
    if case["flex_decode"]:
        env["AHN_HARNESS_FLEX_DECODE"] = case["flex_decode"]
    rec = dict(case)
    method = make_method("full")
    import torch._dynamo

    torch._dynamo.reset()  # every case compiles afresh (and dynamo's recompile limit never applies)
    t0 = time.perf_counter()
    with kernel_choices() as chooser, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with environment(env):
            # room for the timed steps: the full layout's capacity is prompt + new tokens, rounded to 1,024
            dec = StaticDecoder(model, method, case["batch"], case["prompt"] + 3 + steps_cap * (reps + 2))
        dec.capture()  # compiles and records the graph on CUDA; nothing on the CPU
        if dec.compile_backend is not None and not dec.graphs:
            dec._warm_up(retry=True)
    sync(device)
    rec["compile_capture_s"] = time.perf_counter() - t0
    rec.update(capacity=dec.layout.capacity, attention=dec.attention, group_rows=dec.group_rows,
               flex_options=dec.flex_options if dec.attention != "products" else None, splits=dec.splits,
               compile_backend=dec.compile_backend, graphs=dec.graphs,
               flex_decoding_kernel=(all(chooser.decisions) if chooser.decisions else None),
               warnings=[str(w.message)[:300] for w in caught if "static decode step" in str(w.message)])
    kv = sum(t.numel() * t.element_size() for t in (*dec.k, *dec.v))
    rec["kv_gb"], rec["floor_gb"] = kv / 1e9, dec.floor_nbytes() / 1e9
    fill(dec, case["prompt"], model.config.vocab_size)
    dec.step()
    sync(device)
    first_logits = dec.logits.float().cpu().clone()
    t1 = time.perf_counter()
    dec.step()
    sync(device)
    one = time.perf_counter() - t1
    steps = max(1, min(steps_cap, round(target_s / max(one, 1e-6))))
    runs = []
    for _ in range(reps):
        t1 = time.perf_counter()
        for _ in range(steps):
            dec.step()
        sync(device)
        runs.append((time.perf_counter() - t1) / steps * 1e3)
    rec.update(steps=steps, reps=reps, ms=statistics.median(runs), ms_min=min(runs), ms_max=max(runs))
    del dec
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rec, first_logits


def machine(device: torch.device) -> dict:
    state = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "torch": torch.__version__}
    if device.type == "cuda":
        from bench.bench_gpu import machine_state

        state.update(machine_state())
        state["sms"] = torch.cuda.get_device_properties(device).multi_processor_count
    else:
        state["device"] = f"CPU ({platform.processor() or platform.machine()})"
    return state


def report(doc: dict, out: Path) -> str:
    """Write the JSON and the markdown table of `doc` (the machine, the copy rate, the cases so far)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gqa_decode_bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    m, rate = doc["machine"], doc["copy_rate_gb_s"]
    lines = [f"# Static decode step, full attention, Qwen2.5-0.5B shape ({m['device']}, {m['date']}, "
             f"torch {m['torch']})", "",
             f"{doc['model']}. Per case: the median ms of a step over {doc['reps']} runs (min–max), after "
             "compilation and the graph's capture. Floor: the bytes a step must read (K/V buffers; + weights) over "
             f"the device copy rate measured in this run ({rate:,.0f} GB/s read + written). Reproduce: "
             f"`python -m bench.bench_gqa_decode{' --tiny' if doc['tiny'] else ''}`.", "",
             "| B | prompt | setting | kernel | ms a step (min–max) | kv floor ms | floor ms | × floor | "
             "vs products (rel. err) | compile s |",
             "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in doc["cases"]:
        if "error" in r:
            lines.append(f"| {r['batch']} | {r['prompt']:,} | {r['label']} | | {r['error']} | | | | | |")
            continue
        kv_floor, floor = r["kv_gb"] / rate * 1e3, r["floor_gb"] / rate * 1e3
        kernel = {True: "decoding", False: "main", None: "—"}[r["flex_decoding_kernel"]]
        if r["attention"] == "products":
            kernel = "bmm" if r["setting"] == "products" else "fell back to the products uncompiled"
        rel = r.get("rel_err_vs_products")
        lines.append(f"| {r['batch']} | {r['prompt']:,} | {r['label']} | {kernel} | {r['ms']:.2f} "
                     f"({r['ms_min']:.2f}–{r['ms_max']:.2f}) | {kv_floor:.2f} | {floor:.2f} | {r['ms'] / floor:.1f}× | "
                     f"{'' if rel is None else f'{rel:.1e}'} | {r['compile_capture_s']:.0f} |")
    if doc.get("skipped"):
        lines += ["", f"Not run (the {doc['budget_s']:.0f} s budget was spent): "
                  + "; ".join(f"B={c['batch']} {c['prompt']:,} {c['label']}" for c in doc["skipped"]) + "."]
    text = "\n".join(lines) + "\n"
    (out / "gqa_decode_bench.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    from baselines.static_decode import split_kv

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tiny", action="store_true", help="a 2-layer model at toy lengths on the CPU (tests)")
    p.add_argument("--batches", default="1,5,16")
    p.add_argument("--prompts", default=None, help="prompt lengths (default 4096,32768,131072; tiny 64,256)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="at most this many steps a run")
    p.add_argument("--budget-s", type=float, default=120.0,
                   help="no case but the first starts after this many seconds")
    p.add_argument("--only", default="", help="run only the cases whose label is in this comma list")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("error: no GPU; use --tiny for the CPU's toy run")
    prompts = [int(x) for x in (args.prompts or ("64,256" if args.tiny else "4096,32768,131072")).split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    if args.tiny:
        batches = [b for b in batches if b <= 5] or [1]
    doc = {"machine": machine(device), "model": ("tiny Qwen2 (2 layers, hidden 112, 14/2 heads of 8), fp32, CPU"
                                                 if args.tiny else "Qwen2.5-0.5B config (24 layers, hidden 896, "
                                                 "14/2 heads of 64), random bf16 weights"),
           "tiny": args.tiny, "reps": args.reps, "budget_s": args.budget_s,
           "copy_rate_gb_s": copy_rate_gb_s(device, (1 << 20) if args.tiny else (1 << 30)), "cases": []}
    print(json.dumps(doc["machine"]), flush=True)
    model = build_model(args.tiny, device)
    sms = doc["machine"].get("sms", 132)
    todo = cases(batches, prompts, lambda b: split_kv(b, model.config.num_key_value_heads, sms))
    if args.only:
        todo = [c for c in todo if c["label"] in args.only.split(",")]
    logits: dict[tuple, dict[str, torch.Tensor]] = {}
    for i, case in enumerate(todo):
        if i and time.perf_counter() - t_start > args.budget_s:  # the first case always runs
            doc["skipped"] = todo[i:]
            break
        try:
            rec, first = time_case(model, case, args.steps, args.reps, target_s=0.02 if args.tiny else 0.2)
        except torch.OutOfMemoryError as exc:
            rec, first = dict(case, error=f"OOM: {str(exc).splitlines()[0][:80]}"), None
            torch.cuda.empty_cache()
        if first is not None:
            shape = (case["batch"], case["prompt"])
            logits.setdefault(shape, {})[case["label"]] = first
            for r in [*doc["cases"], rec]:  # compare every case of this shape with products, once both ran
                ref = logits.get((r["batch"], r["prompt"]), {}).get("products")
                mine = logits.get((r["batch"], r["prompt"]), {}).get(r["label"])
                if ref is not None and mine is not None and r["label"] != "products":
                    r["rel_err_vs_products"] = ((mine - ref).norm() / ref.norm()).item()
        doc["cases"].append(rec)
        print(json.dumps(rec), flush=True)
        report(doc, args.out)
    doc["total_s"] = time.perf_counter() - t_start
    print(report(doc, args.out))


if __name__ == "__main__":
    main()
