"""The analytic 'actual' cost model against what the implementation really stores and computes.

Cache bytes: measured on the live cache tensors. FLOPs: counted by
`torch.utils.flop_counter` with attention computed by explicit matmuls, so the counter sees every matmul.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from baselines import attach, make_method
from baselines.attention import explicit_matmul_attention
from baselines.costs import cache_bytes_actual, estimate
from baselines.engine import prefill
from baselines.model_configs import ModelDims
from tests.tiny_models import randomize_ahn, tiny_model

SINKS, WINDOW, SLOTS = 4, 20, 3
BOUNDED = ["swa", "ct-max", "ct-avg", "ahn-gdn", "ahn-dn", "ahn-mamba2"]


def _method(name: str):
    if name == "full":
        return make_method("full")
    if name.startswith("ct"):
        return make_method(name, sinks=SINKS, window=WINDOW, slots=SLOTS)
    return make_method(name, sinks=SINKS, window=WINDOW)


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2")


@pytest.mark.parametrize("name", ["full", *BOUNDED])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_live_cache_bytes_equal_model_and_stay_flat(model, name, dtype):
    model = model.to(dtype)
    dims = ModelDims.from_hf_config(model.config)
    measured = {}
    for factor in (1, 2, 3, 5, 8):
        T = factor * (SINKS + WINDOW) + (factor % 3)  # also lengths that leave a CT group incomplete
        ids = torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(factor))
        method = _method(name)
        with attach(model, method):
            cache = method.new_cache(model)
            prefill(model, method, cache, ids, chunk_size=7)
        expected = cache_bytes_actual(dims, name, T, 0 if name == "full" else SINKS, WINDOW,
                                      ct_slots=SLOTS, dtype_bytes=torch.finfo(dtype).bits // 8)
        assert cache.nbytes() == expected, (name, T)
        measured[factor] = (T, cache.nbytes())
    model.to(torch.float32)
    if name == "full":  # linear in T
        (t2, b2), (t8, b8) = measured[2], measured[8]
        assert b8 * t2 == b2 * t8
    elif name.startswith("ct"):  # flat once the FIFO is full, up to the <4 pending raw tokens
        sizes = [b for f, (_, b) in measured.items() if f >= 3]
        kv_token = 2 * dims.num_kv_heads * dims.head_dim * dims.num_layers * torch.finfo(dtype).bits // 8
        assert max(sizes) - min(sizes) <= 3 * kv_token
    else:
        assert len({b for f, (_, b) in measured.items() if f >= 2}) == 1


@pytest.mark.parametrize("name", ["full", "swa", "ct-max", "ct-avg"])
@pytest.mark.parametrize("chunk", [1, 7, 16, 100])
def test_analytic_flops_equal_flop_counter(model, name, chunk):
    dims = ModelDims.from_hf_config(model.config)
    T = 100
    ids = torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(0))
    method = _method(name)
    with attach(model, method), FlopCounterMode(display=False) as counter, explicit_matmul_attention():
        prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
    est = estimate(dims, name, T, 0 if name == "full" else SINKS, WINDOW, ct_slots=SLOTS, chunk_size=chunk,
                   dtype_bytes=4)
    assert counter.get_total_flops() == est.flops_model_actual


@pytest.mark.parametrize("name", ["ahn-gdn", "ahn-dn", "ahn-mamba2"])
@pytest.mark.parametrize("chunk", [1, 16])
def test_ahn_flops_equal_counter_plus_rank_one_updates(model, name, chunk):
    """With the recurrent kernel (chunks <= 64 tokens) the counter sees every matmul; the rank-one state
    update k v'ᵀ is elementwise, invisible to it, and costs 2·dh² per head per written token."""
    dims = ModelDims.from_hf_config(model.config)
    T = 100
    ids = torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(0))
    method = _method(name)
    with attach(model, method):
        randomize_ahn(method)
        with FlopCounterMode(display=False) as counter, explicit_matmul_attention():
            prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
    est = estimate(dims, name, T, SINKS, WINDOW, chunk_size=chunk, dtype_bytes=4)
    written = T - SINKS - WINDOW
    rank_one = dims.num_layers * dims.num_heads * 2 * dims.head_dim**2 * written
    assert counter.get_total_flops() + rank_one == est.flops_model_actual
