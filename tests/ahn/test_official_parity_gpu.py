"""GPU only: the fast path (FlexAttention + fla kernels, bf16) against the official AHN code's logits.

Same fixtures as ``test_official_parity.py`` (``$AHN_HARNESS_FIXTURES`` or ``../shared/fixtures``), with the bf16
bounds: median relative error past sinks + window <= 0.035 per file, argmax agreement >= 92%. Four ways through
the fast path: the one-shot pass (one FlexAttention call over the whole prompt, fla chunk kernels); the engine's
prefill, then token-by-token decode to the end (fla one-token kernels, CUDA-graph replay where it is on); the
static decoder fed the prompt's tokens (the whole step one CUDA graph); chunked prefill in chunks of 136
(FlexAttention per chunk, fla carrying the state between chunks). A spy asserts that the fast kernels really
ran. Run: ``python -m pytest -m gpu tests/ahn/test_official_parity_gpu.py``.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from baselines.engine import decode_step, prefill
from tests.ahn.official_fixtures import (
    BF16_ARGMAX,
    BF16_MEDIAN,
    CELLS,
    OfficialCase,
    Oracle,
    load_case,
    official_model,
    one_shot_logits,
    past_window,
    relative_errors,
    static_decode_logits,
)

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("fla.ops.gated_delta_rule", reason="needs fla (pip install 'ahn-harness[gpu]')")
    return torch.device("cuda")


@pytest.fixture
def fast_calls(monkeypatch) -> Counter:
    """How often FlexAttention and the fla kernels ran (a fallback to the reference path would leave 0)."""
    from ahn.ops import fla_backend
    from baselines import flex

    calls: Counter = Counter()

    def spy(module, name: str, tag: str) -> None:
        original = getattr(module, name)

        def counted(*args, **kwargs):
            out = original(*args, **kwargs)
            if out is not None:
                calls[tag] += 1
            return out

        monkeypatch.setattr(module, name, counted)

    spy(flex, "sink_window_attention", "flex")
    spy(fla_backend, "delta_rule", "fla")
    spy(fla_backend, "scalar_decay", "fla")
    monkeypatch.setenv("AHN_HARNESS_FLEX", "1")
    return calls


def _bf16_oracle(case: OfficialCase) -> Oracle:
    return next(o for o in case.oracles if o.name == "official_bf16.safetensors")


def _check(case: OfficialCase, oracle: Oracle, got: dict[int, torch.Tensor], argmax: bool = True) -> None:
    """Our logits at the oracle positions we have, past sinks + window, within the bf16 bounds."""
    rows = [i for i in past_window(oracle, case).tolist() if int(oracle.positions[i]) in got]
    assert rows, f"{case.cell}/{oracle.name}: no position past the window was computed"
    ours = torch.stack([got[int(oracle.positions[i])].double().cpu() for i in rows])
    theirs = oracle.logits[rows]
    rel = relative_errors(ours, theirs)
    where = f"{case.cell}/{oracle.name} ({len(rows)} positions)"
    assert rel.median() <= BF16_MEDIAN, f"{where}: median {rel.median():.3g}, max {rel.max():.3g}"
    if argmax:
        agree = (ours.argmax(-1) == theirs.float().argmax(-1)).double().mean()
        assert agree >= BF16_ARGMAX, f"{where}: argmax agrees at {agree:.1%}"


@pytest.mark.parametrize("cell", CELLS)
def test_fast_one_shot_matches_official(cuda, fast_calls, cell):
    case = load_case(cell)
    with official_model(case, torch.bfloat16, device=cuda, backend="auto") as (model, _):
        logits = one_shot_logits(model, case.ids)
    assert fast_calls["flex"] > 0 and fast_calls["fla"] > 0, dict(fast_calls)
    agree = []
    for oracle in case.oracles:  # every file: the official bf16 run and its fp32 runs
        got = {int(p): logits[int(p)] for p in oracle.positions}
        _check(case, oracle, got, argmax=False)
        past = past_window(oracle, case)
        agree.append((logits[oracle.positions].argmax(-1) == oracle.logits.float().argmax(-1))[past])
    share = torch.cat(agree).double().mean()
    assert share >= BF16_ARGMAX, f"{cell}: argmax agrees at {share:.1%} of all positions past the window"


@pytest.mark.parametrize("cell", CELLS)
def test_fast_prefill_then_decode_matches_official(cuda, fast_calls, cell):
    """Prefill 505 tokens, then decode one token at a time to 2,048: the memory starts during decode, and
    every position the official bf16 file has from there on is compared (200 past the window)."""
    case = load_case(cell)
    oracle = _bf16_oracle(case)
    ids, start = case.ids.to(cuda), 505
    with official_model(case, torch.bfloat16, device=cuda, backend="auto") as (model, method):
        cache = method.new_cache(model)
        got = {start - 1: prefill(model, method, cache, ids[None, :start], chunk_size=start)[0]}
        for t in range(start, len(ids)):
            got[t] = decode_step(model, method, cache, ids[t: t + 1])[0]
    assert fast_calls["flex"] > 0 and fast_calls["fla"] > 0, dict(fast_calls)
    assert len(past_window(oracle, case)) == 200
    _check(case, oracle, got)


@pytest.mark.parametrize("cell", CELLS)
def test_fast_static_decode_matches_official(cuda, fast_calls, monkeypatch, cell):
    """Prefill 505 tokens, then the static decoder (the whole step one CUDA graph) fed the prompt's tokens to
    2,048: the 200 positions of the official bf16 file past the window. The prompt fits sinks + window, so the
    memory is written only by the step, whose compiled form runs the cell's recurrence in its one-pass form
    (`ahn.ops.naive`), not fla: the spy checks the step was compiled by inductor and captured, not fla's calls."""
    from baselines.static_decode import StaticDecoder

    captured = []
    original = StaticDecoder.capture

    def capture(self):
        original(self)
        captured.append((self.compile_backend, self._graph is not None))

    monkeypatch.setattr(StaticDecoder, "capture", capture)
    case = load_case(cell)
    oracle = _bf16_oracle(case)
    start = 505
    with official_model(case, torch.bfloat16, device=cuda, backend="auto") as (model, method):
        logits = static_decode_logits(model, method, case.ids, start)
    assert fast_calls["flex"] > 0 and captured == [("inductor", True)], (dict(fast_calls), captured)
    _check(case, oracle, {start + i: row for i, row in enumerate(logits)})


@pytest.mark.parametrize("cell", CELLS)
def test_fast_chunked_prefill_matches_official(cuda, fast_calls, cell):
    """Chunks of 136 after a first chunk of 505 (chunk ends land on the official file's positions), the state
    carried between chunks through the fla kernels. 12 positions past the window: the median bound only."""
    case = load_case(cell)
    oracle = _bf16_oracle(case)
    ids = case.ids.to(cuda)
    ends = [505, *range(505 + 136, len(ids), 136), len(ids)]
    wanted = {int(p) for p in oracle.positions}
    assert all(end - 1 in wanted for end in ends), ends
    with official_model(case, torch.bfloat16, device=cuda, backend="auto") as (model, method):
        cache = method.new_cache(model)
        got, begin = {}, 0
        for end in ends:
            got[end - 1] = prefill(model, method, cache, ids[None, begin:end], chunk_size=end - begin)[0]
            begin = end
    assert fast_calls["flex"] > 0 and fast_calls["fla"] > 0, dict(fast_calls)
    _check(case, oracle, got, argmax=False)
