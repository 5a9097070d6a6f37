"""This project's AHN against the official AHN code (ByteDance-Seed/AHN 3d2d174), from the CPU, in seconds.

The oracle is the official code's own logits on random weights (``../shared/fixtures/official-ahn/``, made on a
GPU): the fixture base and AHN checkpoints are loaded strictly and run through the fp32 reference path (masked
SDPA + the PyTorch recurrences); the streaming engine (chunked prefill, token-by-token decode, the static decoder)
is held to the official logits and to the one-shot pass on the same weights. Bounds and measured levels: ``docs/PARITY.md``. Skips without the fixtures.
"""

from __future__ import annotations

import pytest
import torch

from baselines import attach, make_method
from baselines.engine import decode_step, prefill
from tests.ahn.official_fixtures import (
    BF16_ARGMAX,
    BF16_MEDIAN,
    CELLS,
    FP32_BOUND,
    OfficialCase,
    load_case,
    official_model,
    one_shot_logits,
    past_window,
    relative_errors,
    static_decode_logits,
)

# Before sinks + window the memory is empty and both runs are plain fp32 attention (GDN/DN measure ~1e-6).
ATTENTION_ONLY_BOUND = 1e-4
# fp64 runs still compute RoPE angles and RMSNorm in fp32 inside the transformers model, so two fp64 runs of
# the same function agree to a few fp32 roundings (6e-8 each), not to fp64's; a misaligned or lost memory
# token moves the logits by > 1e-3 at these output maps.
STREAMING_BOUND = 1e-6
EXPECTED_FILES = {"gdn": {"official_bf16.safetensors", "official_fp32_short.safetensors"},
                  "dn": {"official_bf16.safetensors", "official_fp32_short.safetensors"},
                  "mamba2": {"official_bf16.safetensors", "official_fp32_short.safetensors",
                             "official_fp32.safetensors"}}


@pytest.fixture(scope="module", params=CELLS)
def case(request) -> OfficialCase:
    return load_case(request.param)


@pytest.fixture(scope="module")
def fp32_logits(case: OfficialCase) -> torch.Tensor:
    with official_model(case, torch.float32, backend="reference") as (model, _):
        return one_shot_logits(model, case.ids)


def test_fp32_reference_matches_every_official_file(case, fp32_logits):
    assert {o.name for o in case.oracles} == EXPECTED_FILES[case.cell]
    for oracle in case.oracles:
        ours = fp32_logits[oracle.positions]
        rel = relative_errors(ours, oracle.logits)
        past = past_window(oracle, case)
        before = torch.nonzero(oracle.positions < case.sinks + case.window).flatten()
        assert len(past) >= 40, f"{oracle.name}: only {len(past)} positions reach the memory"
        where = f"{case.cell}/{oracle.name}"
        if oracle.fp32:
            assert rel[past].max() <= FP32_BOUND[case.cell], f"{where}: max {rel[past].max():.3g} past the window"
            assert rel[before].max() <= ATTENTION_ONLY_BOUND, f"{where}: max {rel[before].max():.3g} before it"
        else:
            agree = (ours.argmax(-1) == oracle.logits.float().argmax(-1))[past].double().mean()
            assert rel[past].median() <= BF16_MEDIAN, f"{where}: median {rel[past].median():.3g} past the window"
            assert agree >= BF16_ARGMAX, f"{where}: argmax agrees at {agree:.1%} of the positions past the window"


def test_the_memory_path_is_what_is_compared(case):
    """Sinks + window alone (the AHN switched off) is far from the official logits past the window, so the
    bounds above hold the memory's contribution, not just the attention."""
    short = next(o for o in case.oracles if o.name == "official_fp32_short.safetensors")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(case.base, dtype=torch.float32, attn_implementation="sdpa").eval()
    swa = make_method("swa", sinks=case.sinks, window=case.window)
    with attach(model, swa):
        logits = one_shot_logits(model, short.ids)
    past = past_window(short, case)
    rel = relative_errors(logits[short.positions], short.logits)[past]
    assert rel.median() > 10 * FP32_BOUND[case.cell], f"{case.cell}: without memory only {rel.median():.3g} off"


def test_engine_prefill_and_decode_match_official_fp32(case):
    """The streaming engine in fp32: chunked prefill up to 500 tokens, then token-by-token decode across
    sinks + window (the memory starts during decode), each step held to the official fp32 logits."""
    short = next(o for o in case.oracles if o.name == "official_fp32_short.safetensors")
    ids, start = short.ids, 500
    with official_model(case, torch.float32, backend="reference") as (model, method):
        cache = method.new_cache(model)
        steps = [prefill(model, method, cache, ids[None, :start], chunk_size=128)[0]]
        for t in range(start, len(ids)):
            steps.append(decode_step(model, method, cache, ids[t: t + 1])[0])
    positions = torch.arange(start - 1, len(ids))
    rel = relative_errors(torch.stack(steps), short.logits[positions])
    past = positions >= case.sinks + case.window
    assert past.sum() == 40
    assert rel[past].max() <= FP32_BOUND[case.cell], f"{case.cell}: max {rel[past].max():.3g}"
    assert rel[~past].max() <= ATTENTION_ONLY_BOUND, f"{case.cell}: max {rel[~past].max():.3g} before the window"


def test_static_decode_matches_official_fp32(case):
    """The static decoder (fixed K/V ring and AHN buffers) fed the prompt's tokens from 500 on, in fp32."""
    short = next(o for o in case.oracles if o.name == "official_fp32_short.safetensors")
    start = 500
    with official_model(case, torch.float32, backend="reference") as (model, method):
        logits = static_decode_logits(model, method, short.ids, start)
    positions = torch.arange(start, len(short.ids))
    rel = relative_errors(logits, short.logits[positions])
    past = positions >= case.sinks + case.window
    assert past.sum() == 40
    assert rel[past].max() <= FP32_BOUND[case.cell], f"{case.cell}: max {rel[past].max():.3g}"
    assert rel[~past].max() <= ATTENTION_ONLY_BOUND, f"{case.cell}: max {rel[~past].max():.3g} before the window"


def test_engine_streaming_equals_one_shot_fp64(case):
    """Chunked prefill (uneven chunks, a single token, a chunk longer than the window), token-by-token decode
    across sinks + window, then more chunks: every step's logits equal the one-shot pass's at that position."""
    ids = case.ids[:1200]
    schedule = [("prefill", 37), ("prefill", 200), ("prefill", 1), ("prefill", 250), ("decode", 64),
                ("prefill", 600), ("prefill", 48)]
    assert sum(n for _, n in schedule) == len(ids)
    with official_model(case, torch.float64, backend="reference") as (model, method):
        reference = one_shot_logits(model, ids)
        cache = method.new_cache(model)
        got, pos = {}, 0
        for kind, n in schedule:
            if kind == "prefill":
                got[pos + n - 1] = prefill(model, method, cache, ids[None, pos: pos + n], chunk_size=n)[0]
                pos += n
            else:
                for _ in range(n):
                    got[pos] = decode_step(model, method, cache, ids[pos: pos + 1])[0]
                    pos += 1
    positions = sorted(got)
    assert positions[0] < case.sinks + case.window < positions[-1]
    rel = relative_errors(torch.stack([got[p] for p in positions]), reference[positions])
    worst = positions[int(rel.argmax())]
    assert rel.max() <= STREAMING_BOUND, f"{case.cell}: {rel.max():.3g} at position {worst}"
