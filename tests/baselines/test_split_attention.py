"""Sink + window attention as three dense pieces merged by log-sum-exp (`baselines.split_attention`) against the
masked reference, in fp64: the same softmax over the same keys, summed in another order, so they agree to
~1e-15; the bound 1e-10 leaves room for rounding and none for a wrong key."""

from __future__ import annotations

import pytest
import torch

from ahn.method import AHNMethod
from baselines import attach, fused_layers, make_method
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


def test_the_kernels_get_the_grouped_key_heads_as_they_are(monkeypatch):
    """Every piece reaches cuDNN with the 2 key heads of 4 query heads (no expanded copy of its keys); the kernel
    is stood in for by the reference piece, so the chunk's result must also equal the masked reference, up to
    the fp32 log-sum-exp the path keeps (as cuDNN returns it): each weight exp(lse_p − lse) is then off by at
    most 2 · 2**-24 · |lse| relative."""
    from baselines.interface import ChunkPlan

    seen = []

    def cudnn(query, keys, values, bias, compute_lse, dropout, causal, debug, scale):
        seen.append((tuple(query.shape), tuple(keys.shape), causal))
        out, lse = split.piece(query, keys, values, scale, causal)
        return out, lse[..., None]

    monkeypatch.setattr(torch.ops.aten, "_scaled_dot_product_cudnn_attention", cudnn, raising=False)
    method = make_method("swa", sinks=2, window=12)
    plan = ChunkPlan(start=30, length=5, n_sink_old=2, first_old=18, n_sink_after=2, first_nonsink=18, keep_idx=7,
                     first_after=23, method=method)
    g = torch.Generator().manual_seed(5)
    q = torch.randn(1, 4, 5, 8, generator=g, dtype=torch.float64)
    k, v = (torch.randn(1, 2, 19, 8, generator=g, dtype=torch.float64) for _ in range(2))
    out = split.sink_window_attention(q, k, v, plan, method, 0.3, kernel="cudnn")
    assert [(shape[1], keys[1], causal) for shape, keys, causal in seen] == [(4, 2, False), (4, 2, True),
                                                                             (4, 2, True)]
    ref = masked_attention(q, k, v, plan.visible(q.device), 0.3)
    lse_max = split.piece(q, k, v, 0.3, causal=False)[1].abs().max()
    assert (out - ref).abs().max() <= 4 * 2**-24 * lse_max * ref.abs().max()


def test_the_combined_pieces_equal_the_merge_compiled_or_not(monkeypatch):
    """`combine` (B reversed, the [B,c,H,dh] layout) against `merge` of the pieces in query order, plain and through
    inductor (CPU, fp64: the same sums in another order, ~1e-16 apart)."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 4, 6, 8, generator=g, dtype=torch.float64)
    k, v = (torch.randn(1, 2, 20, 8, generator=g, dtype=torch.float64) for _ in range(2))
    a = split.piece(q, k[:, :, :9], v[:, :, :9], 0.3, causal=False)
    b_rev = split.piece(q[:, :, :5].flip(2), k[:, :, 9:14].flip(2), v[:, :, 9:14].flip(2), 0.3, causal=True)
    c = split.piece(q, k[:, :, 14:], v[:, :, 14:], 0.3, causal=True)
    ref = split.merge([a, split.unreversed(*b_rev), c])
    assert torch.isinf(split.unreversed(*b_rev)[1][:, :, -1]).all()  # the last query sees nothing of B
    monkeypatch.setenv(fused_layers.ENV, "force")
    for combine in (split.combine, split.combiner(q.device)):
        got = combine(*a, *c, *b_rev)
        assert got.transpose(1, 2).is_contiguous()
        assert (got - ref).abs().max() <= 1e-12 * ref.abs().max()
    assert split.combiner(q.device) is not split.combine
    assert (split.combiner(q.device)(*a, *c) - split.merge([a, c])).abs().max() <= 1e-12 * ref.abs().max()


@pytest.mark.parametrize("name", ["swa", "ahn-gdn"])
@pytest.mark.parametrize("chunk,fused", [(4, "0"), (7, "0"), (10, "0"), (7, "force")])
def test_prefill_through_the_split_path_equals_the_masked_reference(monkeypatch, name, chunk, fused):
    """Chunked prefill of 60 tokens through 3 sinks + 10 window: chunks of either layout take the split path
    (counted), the rest the masked one; the logits equal the masked path's, with the pieces combined plainly
    and through inductor (AHN_HARNESS_FUSED_LAYERS=force)."""
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
        monkeypatch.setenv(fused_layers.ENV, fused)
        monkeypatch.setattr(split, "sink_window_attention", counted)
        got = prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
    assert calls["split"] > 0
    # fp64 throughout, but the logits come back in fp32: the same operations round the same, inductor's fp64 sums
    # in another order may move a logit by its last fp32 step (2**-24 relative), bounded at two steps
    bound = 1e-10 if fused == "0" else 2**-22
    assert (got - ref).abs().max() <= bound * ref.abs().max()


def test_each_chunk_takes_the_layout_its_mask_has(monkeypatch):
    """Chunks of 5 through 3 sinks + 10 window: the first chunk is plain causal (no kept keys: neither layout);
    at 5 every kept key is inside every query's window ("prefix"); at 10 the window's edge falls inside the chunk
    before the window is full (FlexAttention); from 15 on the kept run is full ("window"). Full attention's
    chunks are all "prefix" after the first."""
    seen = []
    original = split.layout

    def spy(plan, method):
        seen.append((plan.start, original(plan, method)))
        return seen[-1][1]

    monkeypatch.setattr(split, "layout", spy)
    monkeypatch.setenv(split.ENV, "split-reference")
    model = tiny_model("qwen2", dtype=torch.float64)
    for name in ("swa", "full"):
        method = make_method(name) if name == "full" else make_method(name, sinks=3, window=10)
        with attach(model, method):
            prefill(model, method, method.new_cache(model), torch.randint(0, 300, (1, 40)), chunk_size=5)
        by_start = dict(seen)
        seen.clear()
        if name == "swa":
            assert by_start == {0: None, 5: "prefix", 10: None, **{start: "window" for start in range(15, 40, 5)}}
        else:
            assert by_start == {0: None, **{start: "prefix" for start in range(5, 40, 5)}}


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
    assert split.layout(plan, method) == "window"
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
    assert (good - ref).abs().max() < 1e-12 and ("reference", "window") in split._CHECKED  # checked per layout
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


def test_running_out_of_memory_leaves_the_kernel_on(monkeypatch):
    """An out-of-memory error is the sample's (the harness records it and goes on), not the kernel's: it reaches
    the caller, and the next chunk still takes the split path."""

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(split, "sink_window_attention", oom)
    monkeypatch.setattr(split, "_FAILED", set())
    with pytest.raises(torch.OutOfMemoryError):
        split.guarded(None, None, None, None, None, 1.0, "cudnn")
    assert "cudnn" not in split._FAILED
