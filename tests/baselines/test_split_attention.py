"""Sink + window attention as three dense pieces merged by log-sum-exp (`baselines.split_attention`) against the
masked reference, in fp64: the same softmax over the same keys, summed in another order, so they agree to
~1e-15; the bound 1e-10 leaves room for rounding and none for a wrong key."""

from __future__ import annotations

import pytest
import torch

from ahn.method import AHNMethod
from baselines import attach, make_method
from baselines import split_attention as split
from baselines.attention import masked_attention
from baselines.engine import prefill
from tests.tiny_models import randomize_ahn, tiny_model


def test_pieces_merge_to_one_softmax():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 5, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, 2, 9, 8, generator=g, dtype=torch.float64)
    v = torch.randn(2, 2, 9, 8, generator=g, dtype=torch.float64)
    ref = masked_attention(q, k, v, None, 0.3)
    parts = [split.piece(q, k[:, :, a:b], v[:, :, a:b], 0.3, causal=False) for a, b in ((0, 2), (2, 7), (7, 9))]
    assert (split.merge(parts) - ref).abs().max() < 1e-12
    out, lse = split.piece(q, k[:, :, :5], v[:, :, :5], 0.3, causal=True)
    tril = torch.ones(5, 5, dtype=torch.bool).tril()
    assert (out - masked_attention(q, k[:, :, :5], v[:, :, :5], tril, 0.3)).abs().max() < 1e-12
    assert lse.shape == (2, 4, 5)


def test_an_unmasked_piece_reads_each_key_head_once(monkeypatch):
    """With 4 query heads on 2 key heads, the unmasked piece reaches the kernel as 2 heads of 2 × 5 queries (no
    expanded copy of its keys); a causal piece cannot be stacked so, and keeps the query heads."""
    seen = []
    original = split._piece

    def spy(query, keys, values, scaling, causal, kernel):
        seen.append((causal, tuple(query.shape), tuple(keys.shape)))
        return original(query, keys, values, scaling, causal, kernel)

    monkeypatch.setattr(split, "_piece", spy)
    q, k = torch.randn(1, 4, 5, 8, dtype=torch.float64), torch.randn(1, 2, 9, 8, dtype=torch.float64)
    out, lse = split.piece(q, k, k, 0.3, causal=False)
    split.piece(q, k[:, :, :5], k[:, :, :5], 0.3, causal=True)
    assert seen == [(False, (1, 2, 10, 8), (1, 2, 9, 8)), (True, (1, 4, 5, 8), (1, 2, 5, 8))]
    assert out.shape == (1, 4, 5, 8) and lse.shape == (1, 4, 5)


@pytest.mark.parametrize("name", ["swa", "ahn-gdn"])
@pytest.mark.parametrize("chunk", [4, 7, 10])
def test_prefill_through_the_split_path_equals_the_masked_reference(monkeypatch, name, chunk):
    """Chunked prefill of 60 tokens through 3 sinks + 10 window: chunks after the window fills take the split
    path (counted), the rest the masked one; the logits equal the masked path's."""
    calls = {"split": 0}
    original = split.sink_window_attention

    def counted(*args, **kwargs):
        out = original(*args, **kwargs)
        calls["split"] += out is not None
        return out

    model = tiny_model("qwen2", dtype=torch.float64)
    ids = torch.randint(0, 300, (1, 60), generator=torch.Generator().manual_seed(3))
    method = make_method(name, sinks=3, window=10)
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        monkeypatch.setenv(split.ENV, "flex")  # path off: the masked reference on the CPU
        ref = prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
        monkeypatch.setenv(split.ENV, "split-reference")
        monkeypatch.setattr(split, "sink_window_attention", counted)
        got = prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
    assert calls["split"] > 0
    assert (got - ref).abs().max() <= 1e-10 * ref.abs().max()


def test_only_a_full_window_takes_the_split_path(monkeypatch):
    """Chunks of 5 through 3 sinks + 10 window: the kept run is full (10 positions after the sinks) from the
    chunk at 15 on; before it, and for full attention, the split path declines."""
    seen = []
    original = split.applicable

    def spy(plan, method):
        seen.append((plan.start, original(plan, method)))
        return seen[-1][1]

    monkeypatch.setattr(split, "applicable", spy)
    monkeypatch.setenv(split.ENV, "split-reference")
    model = tiny_model("qwen2", dtype=torch.float64)
    for name in ("swa", "full"):
        method = make_method(name) if name == "full" else make_method(name, sinks=3, window=10)
        with attach(model, method):
            prefill(model, method, method.new_cache(model), torch.randint(0, 300, (1, 40)), chunk_size=5)
        by_start = dict(seen)
        seen.clear()
        if name == "swa":
            assert by_start == {start: start >= 15 for start in range(0, 40, 5)}
        else:
            assert not any(by_start.values())


def test_a_bad_setting_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv(split.ENV, "fast")
    with pytest.raises(ValueError, match="split, split-flash, split-reference, flex"):
        split.kernel_for(torch.zeros(1))


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["cudnn", "flash"])
def test_gpu_kernels_equal_the_masked_reference(kernel):
    """bf16 pieces through cuDNN / flash against the fp64 masked reference of the same chunk: bf16 operands land
    between 1e-3 and 1e-2 relative (docs/PERFORMANCE.md's levels), a wrong key or merge far above 2e-2."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from baselines.interface import ChunkPlan

    sinks, window, c, start = 16, 600, 256, 2000
    method = make_method("swa", sinks=sinks, window=window)
    plan = ChunkPlan(start=start, length=c, n_sink_old=sinks, first_old=start - window, n_sink_after=sinks,
                     first_nonsink=start - window, keep_idx=sinks + c, first_after=start + c - window,
                     method=method)
    assert split.applicable(plan, method)
    g = torch.Generator("cuda").manual_seed(0)
    n = sinks + window + c
    q = torch.randn(1, 8, c, 128, device="cuda", generator=g).to(torch.bfloat16)
    k = torch.randn(1, 2, n, 128, device="cuda", generator=g).to(torch.bfloat16)
    v = torch.randn(1, 2, n, 128, device="cuda", generator=g).to(torch.bfloat16)
    ref = masked_attention(q.double(), k.double(), v.double(), plan.visible(q.device), 128 ** -0.5)
    out = split.sink_window_attention(q, k, v, plan, method, 128 ** -0.5, kernel).double()
    assert ((out - ref).norm() / ref.norm()).item() < 2e-2


def test_a_kernel_that_raises_warns_once_and_hands_back_to_flex(monkeypatch):
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("cuDNN: no kernel for these shapes\nmore")

    monkeypatch.setattr(split, "sink_window_attention", broken)
    monkeypatch.setattr(split, "_FAILED", set())
    with pytest.warns(UserWarning, match="using FlexAttention from here on: cuDNN: no kernel"):
        assert split.guarded(None, None, None, None, None, 1.0, "cudnn") is None
    assert split.guarded(None, None, None, None, None, 1.0, "cudnn") is None
    assert len(calls) == 1


def test_a_kernel_that_misses_the_reference_on_its_first_chunk_is_switched_off(monkeypatch):
    """A wrong fast path (here: a log-sum-exp off by log 2, as a base-2 convention would be) is caught on the
    first chunk it serves: that chunk returns the reference, later chunks go back to FlexAttention."""
    from baselines.interface import ChunkPlan

    method = make_method("swa", sinks=2, window=12)
    plan = ChunkPlan(start=30, length=5, n_sink_old=2, first_old=18, n_sink_after=2, first_nonsink=18, keep_idx=7,
                     first_after=23, method=method)
    g = torch.Generator().manual_seed(5)
    q = torch.randn(1, 4, 5, 8, generator=g, dtype=torch.float64)
    k = torch.randn(1, 2, 19, 8, generator=g, dtype=torch.float64)
    v = torch.randn(1, 2, 19, 8, generator=g, dtype=torch.float64)
    ref = masked_attention(q, k, v, plan.visible(q.device), 0.3)
    monkeypatch.setattr(split, "_FAILED", set())
    monkeypatch.setattr(split, "_CHECKED", set())
    good = split.guarded(q, k, v, plan, method, 0.3, "reference")
    assert (good - ref).abs().max() < 1e-12 and "reference" in split._CHECKED
    original = split.piece

    def base2(*args, **kwargs):
        out, lse = original(*args, **kwargs)
        return out, lse / torch.log(torch.tensor(2.0, dtype=lse.dtype))

    monkeypatch.setattr(split, "piece", base2)
    monkeypatch.setattr(split, "_CHECKED", set())
    with pytest.warns(UserWarning, match="from the masked reference on its first chunk"):
        got = split.guarded(q, k, v, plan, method, 0.3, "reference")
    assert (got - ref).abs().max() < 1e-12
    assert split.guarded(q, k, v, plan, method, 0.3, "reference") is None
