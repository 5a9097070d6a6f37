"""Memory methods over stock tiny Qwen2 / Qwen3 / Llama models."""

from __future__ import annotations

import inspect

import pytest
import torch

from ahn.method import AHNMethod
from baselines import attach, is_attached, make_method
from baselines.engine import decode_step, generate, prefill
from baselines.registry import get_spec, method_names
from tests.tiny_models import FAMILIES, randomize_ahn, tiny_model
from tests.tolerance import assert_close_rounding, model_chain_ops, rounding_bound

METHODS = method_names()  # every registered method, those registered from their own files included


def _method(name: str, sinks: int, window: int):
    """The method with these sinks and window where it takes them (a method with settings of its own keeps
    them: the tests read `method.sinks` / `method.window` back) and a few CT slots, so the FIFO overflows in a
    short prompt."""
    spec = get_spec(name)
    if not spec.bounded:  # full attention takes no window
        return make_method(name)
    takes = inspect.signature(spec.method_class()).parameters
    wanted = {"sinks": sinks, "window": window, "slots": 3}
    return make_method(name, **{k: v for k, v in wanted.items() if k in takes and k not in spec.fixed})


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request):
    return request.param, tiny_model(request.param)


@pytest.mark.parametrize("name", METHODS)
def test_equals_stock_model_when_window_covers_prompt(family_model, name):
    """s + W >= T: every method is the stock model (to fp32 rounding, tests/tolerance.py)."""
    _, model = family_model
    method = _method(name, sinks=4, window=20)
    covered = 24 if method.window is None else min(24, method.sinks + method.window)
    ids = torch.randint(0, 300, (2, covered), generator=torch.Generator().manual_seed(0))
    stock = model(ids).logits
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)  # memory is never read while s + W >= T, whatever the weights
        one_shot = model(ids).logits
        cache = method.new_cache(model)
        last = prefill(model, method, cache, ids, chunk_size=7)
    ops = model_chain_ops(model.config, ids.shape[1])
    assert_close_rounding(one_shot, stock, ops, msg="one shot")
    assert_close_rounding(last, stock[:, -1], ops, msg="chunked prefill")
    assert model.config._attn_implementation == "sdpa" and not hasattr(model.model.layers[0], "ahn")


def _sink_window_mask(T: int, sinks: int, window: int) -> torch.Tensor:
    t = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    return (j <= t) & ((t - j < window) | (j < sinks))


def test_swa_equals_explicit_masked_attention_reference(family_model):
    """swa == the stock model's own eager attention under an explicit sink+window 4-D mask."""
    family, _ = family_model
    model = tiny_model(family, attn="eager")
    T, sinks, window = 40, 3, 7
    ids = torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(1))
    allowed = _sink_window_mask(T, sinks, window)
    additive = torch.zeros(1, 1, T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)
    reference = model(ids, attention_mask=additive).logits
    method = make_method("swa", sinks=sinks, window=window)
    with attach(model, method):
        ours = model(ids).logits
        cache = method.new_cache(model)
        last = prefill(model, method, cache, ids, chunk_size=5)
    ops = model_chain_ops(model.config, T)
    assert_close_rounding(ours, reference, ops, msg="one shot")
    assert_close_rounding(last, reference[:, -1], ops, msg="chunked prefill")
    cut = (ours - model(ids).logits).abs().max().item()
    assert cut > 100 * rounding_bound(torch.float32, ops, reference.abs().max().item())  # the window cuts something


@pytest.mark.parametrize("cell", ["gdn", "dn", "mamba2"])
def test_ahn_with_zero_output_maps_is_exactly_swa(family_model, cell):
    """At initialisation (o_proj = 0) AHN equals sinks + sliding window bit for bit."""
    _, model = family_model
    ids = torch.randint(0, 300, (1, 37), generator=torch.Generator().manual_seed(2))
    swa = make_method("swa", sinks=2, window=8)
    with attach(model, swa):
        expected = model(ids).logits
        swa_last = prefill(model, swa, swa.new_cache(model), ids, chunk_size=5)
    ahn = make_method("ahn", cell=cell, sinks=2, window=8)
    with attach(model, ahn):
        got = model(ids).logits
        ahn_last = prefill(model, ahn, ahn.new_cache(model), ids, chunk_size=5)
    assert torch.equal(got, expected)
    assert torch.equal(ahn_last, swa_last)


@pytest.mark.parametrize("name", METHODS)
def test_chunked_prefill_and_decode_equal_one_shot(family_model, name):
    """Chunk sizes straddling the window edge, and token-by-token decode, equal one shot."""
    _, model = family_model
    T, sinks, window = 45, 3, 10
    ids = torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(3))
    method = _method(name, sinks, window)
    if method.keeps_scattered:  # evicting per forward by score is not chunk-invariant by definition
        pytest.skip("score-based eviction: chunking and bounds are tested in tests/baselines/test_eviction.py")
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        reference = model(ids).logits  # one-shot, all positions
        ops = model_chain_ops(model.config, T)
        for chunk in (1, 4, 9, 13, 16, T):  # 13 = sinks + window: chunks end just inside / outside the edge
            last = prefill(model, method, method.new_cache(model), ids, chunk_size=chunk)
            assert_close_rounding(last, reference[:, -1], ops, msg=f"chunk {chunk}")
        cache = method.new_cache(model)
        prefill(model, method, cache, ids[:, :11], chunk_size=4)
        for pos in range(11, T):
            logits = decode_step(model, method, cache, ids[:, pos])
            assert_close_rounding(logits, reference[:, pos], ops, msg=f"decode at {pos}")
    if get_spec(name).bounded:  # sinks + window (+ at most ratio-1 pending tokens for CT)
        assert cache.num_kept <= method.sinks + method.window + 3


def test_ahn_memory_alignment_matches_spec_worked_example():
    """docs/AHN.md §2.3 (s=2, W=3): t=5 attends {0,1,3,4,5} with memory {2}; t=9 attends {0,1,7,8,9}, memory {2..6}."""
    model = tiny_model("qwen2")
    method = make_method("ahn", cell="gdn", sinks=2, window=3)
    written: dict[int, list[int]] = {}
    original = method.absorb

    def spy(layer_idx, layer, plan, evicted, query, x, start, new_memory):
        if layer_idx == 0:
            n = evicted["keys"].shape[2]
            written[start] = list(range(evicted["first_position"], evicted["first_position"] + n))
            visible = plan.positions(query.device)[plan.visible(query.device)[-1]].tolist()
            written[("visible", start)] = visible
        return original(layer_idx, layer, plan, evicted, query, x, start, new_memory)

    method.absorb = spy
    ids = torch.randint(0, 300, (1, 10))
    with attach(model, method):
        cache = method.new_cache(model)
        for pos in range(10):
            decode_step(model, method, cache, ids[:, pos])
    assert written[4] == [] and written[("visible", 4)] == [0, 1, 2, 3, 4]
    assert written[5] == [2] and written[("visible", 5)] == [0, 1, 3, 4, 5]
    assert sum((written[t] for t in range(10)), []) == [2, 3, 4, 5, 6]
    assert written[("visible", 9)] == [0, 1, 7, 8, 9]
    assert cache.positions.tolist() == [0, 1, 7, 8, 9]  # s + W entries kept after step 9


def test_generate_honours_eos_penalty_and_bound():
    model = tiny_model("qwen2")
    ids = torch.randint(0, 300, (1, 12), generator=torch.Generator().manual_seed(4))
    method = make_method("swa", sinks=2, window=6)
    with attach(model, method):
        free = generate(model, method, ids, max_new_tokens=8, eos_token_id=[], repetition_penalty=1.0)
        assert len(free.tokens[0]) == 8
        first = free.tokens[0][0]
        stopped = generate(model, method, ids, max_new_tokens=8, eos_token_id=first, repetition_penalty=1.0)
        assert stopped.tokens[0] == [] and stopped.stopped_by_eos == [True]
        # greedy decode equals argmax over a one-shot forward of the growing sequence
        seq = ids
        for tok in free.tokens[0][:4]:
            assert int(model(seq).logits[0, -1].argmax()) == tok
            seq = torch.cat([seq, torch.tensor([[tok]])], 1)
        penalised = generate(model, method, ids, max_new_tokens=8, eos_token_id=[], repetition_penalty=50.0)
        assert penalised.tokens[0][0] not in ids[0].tolist() or penalised.tokens[0] != free.tokens[0]


def test_attach_is_clean_and_asserted():
    model = tiny_model("qwen2")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = make_method("ahn", cell="gdn", sinks=2, window=4)
    with attach(model, method):
        assert is_attached(model, method)
        assert any(".ahn.fn." in k for k in model.state_dict())
        with pytest.raises(RuntimeError, match="already attached"), attach(model, make_method("swa", sinks=1, window=2)):
            pass
    assert not is_attached(model)
    assert model.state_dict().keys() == before.keys()
    with pytest.raises(RuntimeError, match="not attached"):
        prefill(model, method, method.new_cache(model), torch.zeros(1, 3, dtype=torch.long))


def test_no_layer_input_outlives_its_attention():
    """Each layer's normed input is read once by its attention and forgotten: a chunk's inputs for every layer
    kept until the next chunk would stay allocated through the prefill."""
    model = tiny_model("qwen2")
    method = make_method("ahn", cell="gdn", sinks=2, window=4)
    n_layers = model.config.num_hidden_layers
    with attach(model, method):
        prefill(model, method, method.new_cache(model), torch.arange(11)[None], chunk_size=3)
        assert [method.take_layer_input(i) for i in range(n_layers)] == [None] * n_layers
        method.remember_input(0, torch.ones(1))
        assert method.take_layer_input(0) is not None and method.take_layer_input(0) is None
        with method.bypassed():  # the teacher's pass: plain attention, which reads no input, so none is kept
            model(torch.arange(5)[None])
        assert [method.take_layer_input(i) for i in range(n_layers)] == [None] * n_layers


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_method("lru"), "unknown method 'lru'.*valid methods: full, swa"),
        (lambda: make_method("ahn", cell="lstm"), "unknown AHN cell 'lstm'.*gdn, dn, mamba2"),
        (lambda: make_method("swa", window=0), "window must be an integer >= 1.*0"),
        (lambda: make_method("swa", sinks=-1, window=4), "sinks must be an integer >= 0.*-1"),
        (lambda: make_method("ct-max", window=4, slots=0), "slots must be an integer >= 1"),
    ],
)
def test_bad_configuration_is_named(call, match):
    """A clear error naming the bad value and the valid ones."""
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_chunk_and_unsupported_family():
    model = tiny_model("qwen2")
    method = make_method("swa", sinks=1, window=4)
    with attach(model, method), pytest.raises(ValueError, match="chunk size must be an integer >= 1, got 0"):
        prefill(model, method, method.new_cache(model), torch.zeros(1, 3, dtype=torch.long), chunk_size=0)
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(ValueError, match="unsupported model family 'gpt2'.*qwen2, qwen3, llama"), attach(gpt2, method):
        pass


def test_ahn_backend_from_the_environment(monkeypatch):
    assert make_method("ahn-gdn", sinks=2, window=8).backend == "auto"
    assert "backend" not in make_method("ahn-gdn", sinks=2, window=8).describe()  # earlier run hashes unchanged
    monkeypatch.setenv("AHN_HARNESS_AHN_BACKEND", "reference")
    m = make_method("ahn-dn", sinks=2, window=8)
    assert m.backend == "reference" and m.describe()["backend"] == "reference"
    assert make_method("ahn-dn", sinks=2, window=8, backend="chunked").backend == "chunked"  # an argument wins
    monkeypatch.setenv("AHN_HARNESS_AHN_BACKEND", "triton")
    with pytest.raises(ValueError, match="unknown AHN backend 'triton'.*valid: auto, reference"):
        make_method("ahn-gdn", sinks=2, window=8)
