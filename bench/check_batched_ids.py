"""Batched decode against B = 1 on the GPU, token by token: where a request's greedy ids part from the same
request decoded alone, and how near a tie the parting was.

The batched run's per-sample records must equal the B = 1 run's (greedy ids equal on the CPU in fp32, which
the tests hold); on the GPU, bf16 tie-break differences are reported by sample. This script
separates the two causes a parting can have. `--rows` different prompts of `--length` random tokens
(Qwen2.5-3B shape, random weights, `bench/bench_gpu.py`'s model) are prefilled once, then decoded
`--steps` tokens together (B = rows, one static step) and each alone (B = 1), keeping every step's logits.
Per request: the first step whose picks differ; the noise before it (the largest |logit difference| between
the two runs over the earlier steps, where both had seen the same tokens and picked the same, relative to the
largest |logit|); and the margin at the parting (how far, in the B = 1 run's logits, its pick led the batched
pick), relative the same way. The inputs are identical up to that step, so a margin within the noise is
rounding deciding a near-tie (the kernels differ: FlexAttention's slot splits and the GEMMs' shapes depend on
B); a row reading another row's slots or state would compute another request's logits, a difference of the
order of the logits themselves from the first step. Each dtype in `--dtypes` runs the same weights (cast): in
fp32 the picks should agree far longer. The report is written after each dtype.

    python -m bench.check_batched_ids --out leaderboards/perf --length 40960 --rows 4 --steps 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.bench_decode import VARIANTS  # noqa: E402
from bench.bench_gpu import build_model, environment, make, randomize_ahn  # noqa: E402

DTYPES = ("bfloat16", "float16", "float32")


def decode(dec, rows: list[int], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` tokens of the loaded decoder: picks [steps, B] and logits [steps, B, V] of `rows`."""
    picks, logits = [], []
    for _ in range(steps):
        picks.append(dec.step()[rows].clone())
        logits.append(dec.logits[rows].clone())
    return torch.stack(picks), torch.stack(logits)


def parting(batched: tuple[torch.Tensor, torch.Tensor], alone: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Where one request's picks part (None: never), the relative noise before it and the margin there."""
    (pb, lb), (pa, la) = batched, alone
    differ = (pb != pa).nonzero()
    t = int(differ[0]) if len(differ) else None
    end = len(pa) if t is None else t  # the steps before the parting: the same tokens seen, picks equal
    scale = la[: max(end, 1)].abs().max().item()  # the largest |logit| over those steps
    noise = (lb[:end] - la[:end]).abs().max().item() / scale if end else None
    rec = {"first_differing_step": t, "steps": len(pa), "equal_steps": int((pb == pa).sum()),
           "noise_rel": noise}
    if t is not None:
        a, b = int(pa[t]), int(pb[t])
        rec |= {"margin_alone_rel": (la[t, a] - la[t, b]).item() / scale,
                "margin_batched_rel": (lb[t, b] - lb[t, a]).item() / scale}
        rec["near_tie"] = None if noise is None else rec["margin_alone_rel"] <= noise
    return rec


_START = time.perf_counter()


def progress(what: str) -> None:
    """A line on stderr with the seconds since the start, so a run cut by its time limit shows where it was."""
    print(f"[{time.perf_counter() - _START:7.1f} s] {what}", file=sys.stderr, flush=True)


def write_report(results: list[dict], args) -> str:
    """`batched_ids.{json,md}` in `args.out` from the requests compared so far (written after each dtype, so a
    run cut by its time limit keeps what it measured)."""
    lines = [f"# Batched decode against B = 1, token by token ({torch.cuda.get_device_name()}, "
             f"torch {torch.__version__})", "",
             f"{args.method}, prompts of {args.length:,} random tokens, {args.steps} greedy steps, B = {args.rows} "
             "against each request alone. Noise: the largest |logit difference| of the two runs over the steps "
             "before the parting (same tokens seen, same picks), over the largest |logit|; margin: how far the "
             "B = 1 pick led the batched pick at the parting, on the same scale. Reproduce: "
             "`python -m bench.check_batched_ids`.", "",
             "| dtype | request | first differing step | equal steps | noise (rel.) | margin at the parting (rel.) "
             "| within the noise |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        t = "none" if r["first_differing_step"] is None else r["first_differing_step"]
        noise = "" if r["noise_rel"] is None else f"{r['noise_rel']:.1e}"
        margin = f"{r['margin_alone_rel']:.1e}" if "margin_alone_rel" in r else ""
        tie = {True: "yes", False: "**no**"}.get(r.get("near_tie"), "")
        lines.append(f"| {r['dtype']} | {r['row']} | {t} | {r['equal_steps']} / {r['steps']} | {noise} | "
                     f"{margin} | {tie} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batched_ids.json").write_text(json.dumps(results, indent=1))
    (args.out / "batched_ids.md").write_text(text)
    return text


def main() -> None:
    from baselines.prefill_chunk import DEFAULT_CHUNK

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("leaderboards/perf"))
    p.add_argument("--method", default="ahn-gdn")
    p.add_argument("--length", type=int, default=40960, help="prompt tokens (past the 32,768-slot window: AHN "
                                                                   "writes at every step)")
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    p.add_argument("--dtypes", default="bfloat16,float32")
    args = p.parse_args()
    dtypes = args.dtypes.split(",")
    if bad := [d for d in dtypes if d not in DTYPES]:
        p.error(f"--dtypes {args.dtypes!r}: {', '.join(bad)} not among {', '.join(DTYPES)}")
    from baselines import attach
    from baselines.engine import prefill
    from baselines.static_decode import StaticDecoder

    fast = VARIANTS["fused"]  # the static step as `harness run` decodes on CUDA
    model = build_model()
    results = []
    for dtype_name in dtypes:
        model.to(getattr(torch, dtype_name))
        method = make(args.method)
        with attach(model, method):
            if args.method.startswith("ahn"):
                randomize_ahn(method)
            g = torch.Generator("cuda").manual_seed(0)
            prompts = [torch.randint(0, 151000, (1, args.length), device="cuda", generator=g)
                       for _ in range(args.rows)]
            caches = [method.new_cache(model) for _ in prompts]
            firsts = []
            for row, (cache, ids) in enumerate(zip(caches, prompts, strict=True)):
                firsts.append(int(prefill(model, method, cache, ids, chunk_size=args.chunk).argmax(-1)))
                progress(f"{dtype_name}: prompt {row} prefilled")
            capacity = args.length + args.steps + 64
            with environment(fast):
                together = StaticDecoder(model, method, args.rows, capacity)
            together.capture()
            for row, (cache, ids, first) in enumerate(zip(caches, prompts, firsts, strict=True)):
                together.load(row, cache, ids, first)
            batched = decode(together, list(range(args.rows)), args.steps)
            progress(f"{dtype_name}: {args.steps} steps decoded at B = {args.rows}")
            splits = {"batched": together.flex_options.get("SPLIT_KV")}
            del together
            with environment(fast):
                alone = StaticDecoder(model, method, 1, capacity)
            alone.capture()
            splits["alone"] = alone.flex_options.get("SPLIT_KV")
            for row, (cache, ids, first) in enumerate(zip(caches, prompts, firsts, strict=True)):
                alone.reset()
                alone.load(0, cache, ids, first)
                rec = {"dtype": dtype_name, "method": args.method, "length": args.length, "row": row,
                       "batch": args.rows, "split_kv": splits}
                picks, logits = decode(alone, [0], args.steps)
                rec |= parting((batched[0][:, row], batched[1][:, row]), (picks[:, 0], logits[:, 0]))
                print(json.dumps(rec), flush=True)
                progress(f"{dtype_name}: request {row} decoded alone")
                results.append(rec)
            del alone, caches, batched
            torch.cuda.empty_cache()
        text = write_report(results, args)
    print(text)


if __name__ == "__main__":
    main()
