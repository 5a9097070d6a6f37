"""Score-based eviction (`baselines/scattered.py`): each scorer on a hand-computed case, bounded memory during a
chunked prefill, chunking against one compression, and the cost model against the live cache and a FLOP counter."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from baselines import attach, make_method
from baselines import scattered as scattered_module
from baselines.attention import explicit_matmul_attention
from baselines.costs import cache_bytes_actual, estimate, kv_cache_bytes
from baselines.engine import decode_step, prefill
from baselines.model_configs import ModelDims
from baselines.registry import cost_model_of
from baselines.scattered import ScoreInputs, select
from tests.tiny_models import tiny_model

EVICTION = ["snapkv", "pyramidkv", "tova", "h2o", "knorm", "random"]
# a short observation window leaves PyramidKV tokens to share out unevenly between the layers of a small budget
SHORT_WINDOW = {"snapkv": {"window_size": 4}, "pyramidkv": {"window_size": 4}}


def _inputs(keys: torch.Tensor, query: torch.Tensor) -> ScoreInputs:
    """One forward of all 8 tokens from position 0 (nothing kept before), scaling 1."""
    b, hkv, n, _ = keys.shape
    return ScoreInputs(layer_idx=0, keys=keys, values=torch.zeros_like(keys),
                       positions=torch.arange(n).expand(b, hkv, n), query=query, scaling=1.0, n_old=0, memory={})


def _log_keys(*weights: list[float]) -> torch.Tensor:
    """Keys [1, len(weights), 8, 2] whose logit against the query (1, 0) is log(weight): the softmax of a query
    over keys 0..t is then weight_j / sum(weights[0..t])."""
    return torch.tensor([[[[math.log(w), 0.0] for w in head] for head in weights]], dtype=torch.float64)


def _unit_queries(heads: int = 2, c: int = 8) -> torch.Tensor:
    return torch.tensor([1.0, 0.0], dtype=torch.float64).expand(1, heads, c, 2)


def _kept(method, inputs: ScoreInputs) -> list[list[int]]:
    return select(method.score(inputs).float(), method.budget)[0].tolist()


def test_knorm_keeps_the_lowest_norm_keys():
    norms = [[5, 1, 4, 2, 8, 3, 7, 6], [1, 9, 9, 9, 2, 9, 3, 9]]
    keys = torch.tensor([[[[n, 0.0] for n in head] for head in norms]])
    method = make_method("knorm", sinks=0, window=3)
    assert _kept(method, _inputs(keys, _unit_queries())) == [[1, 3, 5], [0, 4, 6]]


def test_tova_keeps_the_last_querys_head_averaged_favourites():
    # last query's attention: head 0 [8,1,1,1,1,1,1,2]/16, head 1 [1,1,1,1,1,1,8,2]/16; mean [9,2,2,2,2,2,9,4]/32
    keys = _log_keys([8, 1, 1, 1, 1, 1, 1, 2], [1, 1, 1, 1, 1, 1, 8, 2])
    method = make_method("tova", sinks=0, window=3)
    scores = method.score(_inputs(keys, _unit_queries()))
    expected = torch.tensor([9, 2, 2, 2, 2, 2, 9, 4], dtype=torch.float64) / 32
    assert torch.allclose(scores[0, 0], expected, atol=1e-12) and torch.equal(scores[0, 0], scores[0, 1])
    assert _kept(method, _inputs(keys, _unit_queries())) == [[0, 6, 7], [0, 6, 7]]  # one set for the layer


@pytest.mark.parametrize(("kernel", "expected"), [(3, [[1, 3, 6, 7], [0, 1, 6, 7]]),
                                                  (1, [[2, 5, 6, 7], [0, 5, 6, 7]])])
def test_snapkv_pools_the_observation_windows_votes(kernel, expected):
    # window 2 (tokens 6, 7, always kept); both window queries weigh prefix token j by e^l_j, so their votes are
    # proportional to it: head 0 [2,1,9,1,3,4] pools (k=3, zero padding) to [3,12,11,13,8,7]/3 -> tokens 3, 1;
    # unpooled 9 and 4 -> tokens 2, 5. Head 1 [9,1,1,1,1,2] pools to [10,11,3,3,4,3]/3 -> 1, 0; unpooled -> 0, 5.
    keys = _log_keys([2, 1, 9, 1, 3, 4, 1, 1], [9, 1, 1, 1, 1, 2, 1, 1])
    method = make_method("snapkv", sinks=0, window=4, window_size=2, kernel_size=kernel)
    assert _kept(method, _inputs(keys, _unit_queries())) == expected


def test_h2o_keeps_heavy_hitters_and_the_recent_half():
    # head 0: all keys equal, so query t spreads 1/(t+1) over tokens 0..t: token j accumulates sum_{t>=j} 1/(t+1)
    # head 1: key 3 has logit 100 for every query from t = 3 on, which then attends it alone
    keys = torch.zeros(1, 2, 8, 2, dtype=torch.float64)
    keys[0, 1, 3, 0] = 100.0
    method = make_method("h2o", sinks=0, window=4)  # budget 4: the 2 most recent + 2 heavy hitters
    inputs = _inputs(keys, _unit_queries())
    assert _kept(method, inputs) == [[0, 1, 6, 7], [0, 3, 6, 7]]
    harmonic_tail = [sum(1 / (t + 1) for t in range(j, 8)) for j in range(8)]
    acc = inputs.new_memory["accumulated"]
    assert torch.allclose(acc[0, 0], torch.tensor(harmonic_tail, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(acc[0, 1, :4], torch.tensor([1 + 1 / 2 + 1 / 3, 1 / 2 + 1 / 3, 1 / 3, 5.0],
                                                      dtype=torch.float64), atol=1e-12)
    # computed 3 queries at a time, the sums are the whole weight matrix's column sums
    assert torch.allclose(inputs.received(block=3), inputs.attention().sum(2), atol=1e-12)


def test_pyramidkv_layer_budgets_follow_the_official_schedule():
    """B = 320, w = 64, beta 20, 32 layers: min_num = 256 // 20 = 12, max_num = 512 - 12 = 500,
    steps = 488 // 31 = 15; layer l keeps 64 + 500 - 15 l tokens: 564 in the first, 99 in the last."""
    from baselines.pyramidkv import layer_budgets

    budgets = layer_budgets(320, 64, 20, 32)
    assert budgets[0] == 564 and budgets[1] == 549 and budgets[31] == 99
    assert sum(budgets) == 32 * 64 + 32 * 500 - 15 * 31 * 32 // 2


def _splitmix_reference(seed: int, layer: int, head: int, position: int) -> int:
    """The random score of `baselines/random_eviction.py`, in Python integers (a simpler implementation)."""
    mask = (1 << 62) - 1
    x = ((((seed * 1_000_003 + layer) * 1_000_003 + head) << 32) + position) % (1 << 64) & mask
    for mult in (0x2545F491, 0x9E3779B1, 0x85EBCA77):
        x = (x ^ (x >> 29)) & mask
        x = (x * mult) & mask
    return x >> 30


@pytest.mark.parametrize("seed", [0, 7])
def test_random_eviction_keeps_the_seeded_draw(seed):
    method = make_method("random", sinks=0, window=3, seed=seed)
    kept = _kept(method, _inputs(torch.zeros(1, 2, 8, 2), _unit_queries()))
    for head in range(2):
        draws = [_splitmix_reference(seed, 0, head, p) for p in range(8)]
        assert kept[head] == sorted(sorted(range(8), key=lambda p: -draws[p])[:3])
    many = make_method("random", sinks=0, window=500, seed=seed)
    wide = _inputs(torch.zeros(1, 2, 1000, 2), _unit_queries(c=1000))
    kept_wide = select(many.score(wide).float(), 500)[0]
    assert 200 < int((kept_wide < 500).sum(-1)[0]) < 300  # about half of the first half stays: no bias to age


# ------------------------------------------------------------------------------------------- on a tiny model


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2")


def _ids(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 300, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", EVICTION)
def test_peak_cache_stays_within_budget_plus_chunk(model, name, monkeypatch):
    """Measured on the live tensors: each layer's attention holds at most budget + chunk raw tokens, and the
    cache after every chunk at most the budget (its bytes: KV of `budget` tokens, plus H2O's scores)."""
    T, budget, chunk = 90, 16, 7
    raw_sizes: list[int] = []
    real = scattered_module.masked_attention

    def spy(query, keys, values, visible, scaling):
        raw_sizes.append(keys.shape[2])
        return real(query, keys, values, visible, scaling)

    monkeypatch.setattr(scattered_module, "masked_attention", spy)
    small_window = {"window_size": 4} if name == "pyramidkv" else {}  # 12 tokens besides it to share out
    method = make_method(name, sinks=2, window=budget - 2, **small_window)
    dims = ModelDims.from_hf_config(model.config)
    cache_sizes: list[tuple[int, int]] = []
    with attach(model, method):
        budgets = [method.layer_budget(i) for i in range(dims.num_layers)]  # all `budget` but PyramidKV's
        cache = method.new_cache(model)
        prefill(model, method, cache, _ids(T), chunk_size=chunk,
                progress=lambda end, total: cache_sizes.append((cache.num_kept, cache.nbytes())))
    assert (budgets == [budget] * dims.num_layers) == (name != "pyramidkv")
    assert max(raw_sizes) == max(budgets) + chunk
    assert max(k for k, _ in cache_sizes) == max(budgets) == cache.num_kept
    extra = 4 * dims.num_kv_heads * budget * dims.num_layers if name == "h2o" else 0
    kv = sum(kv_cache_bytes(dims, b, 4) for b in budgets) // dims.num_layers
    assert max(b for _, b in cache_sizes) == kv + extra
    for layer in range(dims.num_layers):  # per head: the layer's budget of distinct positions, in order, all seen
        pos = cache.kept_positions(layer)
        assert pos.shape == (1, dims.num_kv_heads, budgets[layer])
        assert bool((pos[..., 1:] > pos[..., :-1]).all()) and int(pos.max()) < T


@pytest.mark.parametrize(("name", "layers"), [("random", None), ("knorm", 1)])
def test_chunking_keeps_what_one_compression_keeps(model, name, layers):
    """A per-token score (random: of the position; key norm: of the key, which in the first layer depends on the
    token alone) keeps the same tokens evicting per chunk as compressing once after the whole prompt."""
    method = make_method(name, sinks=0, window=12)
    kept = {}
    with attach(model, method):
        for chunk in (5, 60):
            cache = method.new_cache(model)
            prefill(model, method, cache, _ids(60, 1), chunk_size=chunk)
            kept[chunk] = [cache.kept_positions(i) for i in range(layers or model.config.num_hidden_layers)]
    assert all(torch.equal(a, b) for a, b in zip(kept[5], kept[60], strict=True))


@pytest.mark.parametrize("name", EVICTION)
def test_one_compression_after_the_prompt_leaves_its_logits_exact(model, name):
    """Compressing once after the prompt (one chunk) evicts after the last query attended everything: its
    logits are the stock model's; the cache then holds the budget, and SnapKV and PyramidKV grow while decoding."""
    ids = _ids(40, 2)
    method = make_method(name, sinks=0, window=10)
    with attach(model, method):
        cache = method.new_cache(model)
        last = prefill(model, method, cache, ids, chunk_size=40)
        assert cache.num_kept == 10
        for step in range(3):
            decode_step(model, method, cache, ids[:, step])
    assert torch.allclose(last, model(ids).logits[:, -1], atol=1e-5)
    assert cache.num_kept == (10 if method.evicts_in_decode else 13)  # SnapKV, PyramidKV: the prompt only


@pytest.mark.parametrize("name", EVICTION)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_live_cache_bytes_equal_the_cost_model(model, name, dtype):
    model = model.to(dtype)
    dims = ModelDims.from_hf_config(model.config)
    try:
        for T in (9, 20, 47):
            method = make_method(name, sinks=4, window=12, **SHORT_WINDOW.get(name, {}))
            with attach(model, method):
                cache = method.new_cache(model)
                prefill(model, method, cache, _ids(T), chunk_size=7)
            expected = cache_bytes_actual(dims, cost_model_of(method), T, 4, 12,
                                          dtype_bytes=torch.finfo(dtype).bits // 8)
            assert cache.nbytes() == expected, (name, T)
    finally:
        model.to(torch.float32)


@pytest.mark.parametrize("name", EVICTION)
@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_analytic_flops_equal_flop_counter(model, name, chunk):
    """Attention by explicit matmuls, so the counter sees them and the scoring products too."""
    dims = ModelDims.from_hf_config(model.config)
    T = 32 if chunk == 1 else 100  # past the budget of 24 either way
    method = make_method(name, sinks=4, window=20, **SHORT_WINDOW.get(name, {}))
    with attach(model, method), FlopCounterMode(display=False) as counter, explicit_matmul_attention():
        prefill(model, method, method.new_cache(model), _ids(T), chunk_size=chunk)
    est = estimate(dims, cost_model_of(method), T, 4, 20, chunk_size=chunk, dtype_bytes=4)
    assert counter.get_total_flops() == est.flops_model_actual


def test_eviction_methods_decode_eagerly_and_record_their_settings():
    snap = make_method("snapkv", sinks=0, window=64)
    assert snap.decode_layout(1024) is None
    assert snap.describe() == {"method": "snapkv", "sinks": 0, "window": 64, "budget": 64, "window_size": 32,
                               "kernel_size": 5, "pooling": "avg"}
    assert make_method("h2o", window=8).describe()["recent"] == 0.5
    with pytest.raises(ValueError, match="unknown pooling 'mean'; valid: avg, max"):
        make_method("snapkv", window=8, pooling="mean")
    with pytest.raises(ValueError, match="recent must be a share of the budget in \\[0, 1\\], got 2"):
        make_method("h2o", window=8, recent=2)
