"""Print the measured levels of this project's AHN against the official code's logits (docs/PARITY.md).

CPU (default): the fp32 reference path per fixture file, sinks + window alone (the memory off), the engine in
fp32 (chunked prefill then decode) against the official fp32 run, and the engine in fp64 against the one-shot
pass. ``--device cuda``: the bf16 fast path (FlexAttention + fla), one-shot and prefill + decode. The tests
(tests/ahn/test_official_parity.py, tests/ahn/test_official_parity_gpu.py) assert the bounds; this prints the
numbers. Fixtures: ``../shared/fixtures`` or ``$AHN_HARNESS_FIXTURES``.

    python -m bench.official_parity_levels [--device cuda]
"""

from __future__ import annotations

import argparse
import sys

import torch

from baselines import attach, make_method  # noqa: E402
from baselines.engine import decode_step, prefill  # noqa: E402
from tests.ahn.official_fixtures import (  # noqa: E402
    CELLS,
    case_root,
    load_case,
    official_model,
    one_shot_logits,
    past_window,
    relative_errors,
    static_decode_logits,
)


def _levels(ours: torch.Tensor, theirs: torch.Tensor) -> str:
    rel = relative_errors(ours, theirs)
    agree = int((ours.argmax(-1) == theirs.float().argmax(-1)).sum())
    return f"max {rel.max():.2e}, median {rel.median():.2e}, argmax {agree}/{len(rel)}"


def _decode_run(model, method, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Logits at positions start-1 .. len(ids)-1: prefill `start` tokens, then decode one at a time."""
    cache = method.new_cache(model)
    steps = [prefill(model, method, cache, ids[None, :start], chunk_size=128)[0]]
    for t in range(start, len(ids)):
        steps.append(decode_step(model, method, cache, ids[t: t + 1])[0])
    return torch.stack(steps).double().cpu()


def cpu_levels(cell: str) -> None:
    case = load_case(cell)
    border = case.sinks + case.window
    with official_model(case, torch.float32, backend="reference") as (model, method):
        logits = one_shot_logits(model, case.ids)
        short = next(o for o in case.oracles if o.name == "official_fp32_short.safetensors")
        decoded = _decode_run(model, method, short.ids.to(model.device), 500)
        static = static_decode_logits(model, method, short.ids, 500)
    for o in case.oracles:
        past = past_window(o, case)
        before = torch.nonzero(o.positions < border).flatten()
        print(f"| {cell} | {o.name} | {len(past)} | {_levels(logits[o.positions][past], o.logits[past])} | "
              f"{relative_errors(logits[o.positions][before], o.logits[before]).max():.2e} |")
    positions = torch.arange(499, len(short.ids))
    after = positions >= border
    print(f"  engine fp32, prefill 500 + decode to {len(short.ids)}, vs {short.name} past the window: "
          f"{_levels(decoded[after], short.logits[positions][after])}")
    print(f"  static decoder fp32 from 500, vs {short.name} past the window: "
          f"{_levels(static[after[1:]], short.logits[positions[1:]][after[1:]])}")
    base = model  # the same base, AHN detached on leaving official_model
    swa = make_method("swa", sinks=case.sinks, window=case.window)
    with attach(base, swa):
        no_memory = one_shot_logits(base, short.ids)
    past = past_window(short, case)
    print(f"  sinks + window alone vs {short.name} past the window: "
          f"{_levels(no_memory[short.positions][past], short.logits[past])}")
    with official_model(case, torch.float64, backend="reference") as (model, method):
        ids = case.ids[:1200]
        reference = one_shot_logits(model, ids)
        decoded = _decode_run(model, method, ids[:600], 488)
    print(f"  engine fp64 (prefill 488 + decode to 600) vs the fp64 one-shot pass: "
          f"max {relative_errors(decoded, reference[487:600]).max():.2e}")


def gpu_levels(cell: str) -> None:
    case = load_case(cell)
    bf16 = next(o for o in case.oracles if o.name == "official_bf16.safetensors")
    with official_model(case, torch.bfloat16, device="cuda", backend="auto") as (model, method):
        logits = one_shot_logits(model, case.ids)
        start = 505
        decoded = _decode_run(model, method, case.ids.cuda(), start)
        static = static_decode_logits(model, method, case.ids, start)
    for o in case.oracles:
        past = past_window(o, case)
        print(f"| {cell} | {o.name} | {len(past)} | {_levels(logits[o.positions][past], o.logits[past])} |")
    rows = past_window(bf16, case)
    at = bf16.positions[rows] - (start - 1)
    print(f"  engine bf16, prefill {start} + decode to 2048, vs {bf16.name}: {_levels(decoded[at], bf16.logits[rows])}")
    print(f"  static decoder bf16 from {start}, vs {bf16.name}: {_levels(static[at - 1], bf16.logits[rows])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args(argv)
    import pytest

    try:
        case_root()
    except pytest.skip.Exception as e:  # the fixtures are absent
        print(e.msg, file=sys.stderr)
        return 1
    torch.manual_seed(0)
    print("| cell | file | positions past s+W | our logits vs the official ones past s+W | max before s+W |"
          if args.device == "cpu" else "| cell | file | positions past s+W | bf16 fast path vs official |")
    print("|---|---|---:|---|---:|" if args.device == "cpu" else "|---|---|---:|---|")
    for cell in CELLS:
        (cpu_levels if args.device == "cpu" else gpu_levels)(cell)
    return 0


if __name__ == "__main__":
    sys.exit(main())
