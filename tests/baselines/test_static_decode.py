"""The static decode step (fixed buffers, one graph on CUDA) against the eager engine, its reference.

Both compute the same function in a different order of operations, so in fp64 they agree to ~1e-12; the bound
1e-9 leaves three orders of magnitude for rounding and none for a wrong token, position or memory update.
"""

from __future__ import annotations

import pytest
import torch

from ahn.method import AHNMethod
from baselines import attach, make_method
from baselines.engine import (
    DecoderPool,
    decode_step,
    generate,
    generate_many,
    prefill,
    static_decode_supported,
)
from baselines.methods import method_names
from baselines.static_decode import DecodeLayout, StaticDecoder, decode_attention
from tests.tiny_models import FAMILIES, randomize_ahn, tiny_model

TOL = 1e-9  # fp64: see the module docstring


def _method(name: str, sinks: int, window: int):
    """As the shared method tests build it: these settings where the method takes them, a few CT slots."""
    from tests.baselines.test_methods import _method as shared

    return shared(name, sinks, window)


def _all_methods() -> list[str]:
    import ahn.method  # noqa: F401  (registers the AHN methods)

    return [m for m in method_names() if m != "ahn"]


def _static_methods() -> list[str]:
    return [m for m in _all_methods() if static_decode_supported(_method(m, 3, 10))]


def test_static_layout_covers_the_bounded_and_full_methods():
    assert set(_static_methods()) >= {"full", "swa", "ahn-gdn", "ahn-dn", "ahn-mamba2"}
    assert not static_decode_supported(_method("ct-max", 3, 10))  # pooled slots: eager decode


def test_decode_attention_equals_masked_softmax():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 4, 1, 8, generator=g, dtype=torch.float64)
    k = torch.randn(3, 2, 7, 8, generator=g, dtype=torch.float64)
    v = torch.randn(3, 2, 7, 8, generator=g, dtype=torch.float64)
    valid = torch.rand(3, 7, generator=g) > 0.4
    valid[:, 0] = True
    bias = torch.zeros(3, 7, dtype=torch.float64).masked_fill(~valid, float("-inf"))[:, None]
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    scores = (q @ kk.transpose(-1, -2)) * 0.3
    scores = scores.masked_fill(~valid[:, None, None], float("-inf"))
    ref = scores.softmax(-1) @ vv
    for splits in (1, 7, 3):  # 3 does not divide 7 slots: falls back to one piece
        out = decode_attention(q, k, v, bias, 0.3, splits)
        assert (out - ref).abs().max().item() < 1e-12, splits


@pytest.mark.parametrize("hkv", [1, 2, 4])
def test_flex_attention_equals_the_products(hkv):
    """FlexAttention's call (inductor compiles it into its decoding kernel inside the GPU's step) computes
    `decode_attention`'s function: each query head reads its own KV head (GQA), masked slots get no weight.
    Uncompiled on the CPU in fp64, so the two agree to rounding."""
    from baselines.static_decode import flex_decode_attention, slot_blocks

    g = torch.Generator().manual_seed(hkv)
    q = torch.randn(3, 4, 1, 8, generator=g, dtype=torch.float64)
    k = torch.randn(3, hkv, 37, 8, generator=g, dtype=torch.float64)
    v = torch.randn(3, hkv, 37, 8, generator=g, dtype=torch.float64)
    valid = torch.rand(3, 37, generator=g) > 0.5
    valid[:, 0] = True
    valid[2] = False
    valid[2, 5] = True  # a row that sees one slot
    bias = torch.zeros(3, 37, dtype=torch.float64).masked_fill(~valid, float("-inf"))[:, None]
    ref = decode_attention(q, k, v, bias, 0.3)
    out = flex_decode_attention(q, k, v, bias, 0.3, slot_blocks(37, torch.device("cpu")))
    assert (out - ref).abs().max().item() < 1e-12
    assert torch.equal(out[2], v[2][:, 5:6].repeat_interleave(4 // hkv, 0))  # one slot: its value exactly


def test_ring_layout_puts_the_new_token_where_the_evicted_one_was():
    lay = DecodeLayout(sinks=3, ring=10, evicts=True)
    pos = torch.arange(0, 40)
    slot = lay.slot(pos)
    assert slot[:3].tolist() == [0, 1, 2]
    for p in range(13, 40):  # token p evicts p - 10, same slot
        assert slot[p] == slot[p - 10]
        assert bool(lay.evicting(torch.tensor(p)))
    assert not bool(lay.evicting(torch.tensor(12)))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["full", "swa", "ahn-gdn", "ahn-dn", "ahn-mamba2"])
@pytest.mark.parametrize("T", [8, 21])
def test_static_step_equals_eager_step_token_by_token(family, name, T):
    """Prefill inside the window (decode then crosses its edge) or past it, then decode: the static step's
    logits equal the eager engine's at every token, for the tokens the eager path picks (greedy, repetition
    penalty on)."""
    model = tiny_model(family, dtype=torch.float64)
    sinks, window, steps = 3, 10, 14
    ids = torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(4))
    method = _method(name, sinks, window)
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        cache = method.new_cache(model)
        logits = prefill(model, method, cache, ids, chunk_size=6)
        first = int(logits.argmax(-1))
        decoder = StaticDecoder(model, method, batch=2, max_tokens=T + steps + 1, repetition_penalty=1.3)
        decoder.reset()
        ref_cache = method.new_cache(model)
        prefill(model, method, ref_cache, ids, chunk_size=6)
        decoder.load(1, cache, ids, first)
        seen = torch.cat([ids, torch.tensor([[first]])], 1)
        tok = first
        for step in range(steps):
            eager = decode_step(model, method, ref_cache, torch.tensor([tok]))
            from baselines.engine import apply_repetition_penalty

            eager = apply_repetition_penalty(eager, seen, 1.3)
            picked = decoder.step()
            assert (decoder.logits[1] - eager[0]).abs().max().item() <= TOL * eager.abs().max().item(), step
            tok = int(eager.argmax(-1))
            assert int(picked[1]) == tok
            seen = torch.cat([seen, torch.tensor([[tok]])], 1)
        assert decoder.row_nbytes(1) == ref_cache.nbytes()


def _step_against_engine(model, method, decoder_kwargs: dict, T: int = 21, steps: int = 14, before_load=None,
                         after_load=None) -> StaticDecoder:
    """Prefill `T` tokens, load them into row 1 of a static decoder, and hold its logits to the eager engine's
    for `steps` tokens (greedy, repetition penalty on); `before_load(decoder)` and `after_load(decoder)` run
    at those points. Returns the decoder."""
    from baselines.engine import apply_repetition_penalty

    ids = torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(4))
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        decoder = StaticDecoder(model, method, batch=2, max_tokens=T + steps + 1, repetition_penalty=1.3,
                                **decoder_kwargs)
        if before_load is not None:
            before_load(decoder)
        cache, ref_cache = method.new_cache(model), method.new_cache(model)
        first = int(prefill(model, method, cache, ids, chunk_size=6).argmax(-1))
        prefill(model, method, ref_cache, ids, chunk_size=6)
        decoder.load(1, cache, ids, first)
        if after_load is not None:
            after_load(decoder)
        seen, tok = torch.cat([ids, torch.tensor([[first]])], 1), first
        for step in range(steps):
            eager = apply_repetition_penalty(decode_step(model, method, ref_cache, torch.tensor([tok])), seen, 1.3)
            picked = decoder.step()
            assert (decoder.logits[1] - eager[0]).abs().max().item() <= TOL * eager.abs().max().item(), step
            tok = int(eager.argmax(-1))
            assert int(picked[1]) == tok
            seen = torch.cat([seen, torch.tensor([[tok]])], 1)
    return decoder


@pytest.mark.parametrize("name", ["full", "swa", "ahn-gdn"])
def test_static_step_with_flex_attention_equals_eager_step(name):
    """The step with FlexAttention over the slots (the default where inductor compiles it on CUDA) computes the
    eager engine's function: the validity bias reaches the right row and slot (a loaded row beside an empty
    one, the window's edge crossed)."""
    decoder = _step_against_engine(tiny_model("qwen2", dtype=torch.float64), _method(name, 3, 10),
                                   {"attention": "flex", "compile": False})
    assert decoder.attention == "flex"


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_qkv_projections_run_as_one_product_of_the_current_weights(family):
    """The step projects q, k and v with one product over their stacked weights (and biases: Qwen2 has them,
    Qwen3 not), taken from the modules at load(): weights changed after the decoder was built are the ones it
    uses, and the step calls none of the three modules. Without the merge the step would call them; with stale
    weights its logits would leave the eager engine's."""
    model = tiny_model(family, dtype=torch.float64)
    projections = [lin for layer in model.model.layers
                   for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj)]

    def change_weights(decoder):
        with torch.no_grad():
            for lin in projections:
                lin.weight.mul_(1.5)

    def count_calls_in_steps(decoder):
        step, calls = decoder.step, []

        def counted():
            handles = [lin.register_forward_pre_hook(lambda *args: calls.append(1)) for lin in projections]
            try:
                return step()
            finally:
                for handle in handles:
                    handle.remove()

        decoder.step, decoder.calls = counted, calls

    decoder = _step_against_engine(model, _method("swa", 3, 10), {}, before_load=change_weights,
                                   after_load=count_calls_in_steps)
    assert decoder.calls == []
    assert all(m is not None for m in decoder.qkv)
    assert (decoder.qkv[0][1] is None) == (family == "qwen3")


def test_qkv_merge_stacks_biases_with_zeros_and_leaves_other_modules_alone():
    """A projection without a bias beside ones with a bias gets zeros in the stacked bias, so the one product
    equals the three; a projection that is not a plain Linear (a quantised layer, say) is not merged, and the
    step calls the modules."""
    from types import SimpleNamespace

    from baselines.static_decode import fill_qkv, merged_qkv

    g = torch.Generator().manual_seed(0)
    attn = SimpleNamespace(q_proj=torch.nn.Linear(6, 8, bias=False), k_proj=torch.nn.Linear(6, 4),
                           v_proj=torch.nn.Linear(6, 4))
    for lin in (attn.q_proj, attn.k_proj, attn.v_proj):
        lin.double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g))
    merged = merged_qkv(attn)
    fill_qkv(attn, merged)
    h = torch.randn(2, 1, 6, generator=g, dtype=torch.float64)
    want = torch.cat([attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)], -1)
    assert (torch.nn.functional.linear(h, *merged) - want).abs().max().item() < 1e-12

    class Wrapped(torch.nn.Linear):
        pass

    attn.k_proj = Wrapped(6, 4)
    assert merged_qkv(attn) is None
    model = tiny_model("qwen2", dtype=torch.float64)
    for layer in model.model.layers:
        old = layer.self_attn.v_proj
        layer.self_attn.v_proj = Wrapped(old.in_features, old.out_features).double()
        layer.self_attn.v_proj.load_state_dict(old.state_dict())
    decoder = _step_against_engine(model, _method("ahn-gdn", 3, 10), {})
    assert all(m is None for m in decoder.qkv)


@pytest.mark.parametrize("name", ["full", "swa", "ahn-gdn", "ahn-mamba2", "ct-avg"])
def test_generate_many_equals_generate_per_prompt(name):
    """Mixed prompt lengths (inside and past the window) decoded together give each prompt's own tokens."""
    model = tiny_model("qwen2", dtype=torch.float64)
    method = _method(name, 3, 10)
    prompts = [torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(T)) for T in (5, 31, 12, 44)]
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        ones = [generate(model, method, p, max_new_tokens=9, chunk_size=8, eos_token_id=[7, 11],
                         repetition_penalty=1.2) for p in prompts]
        if not static_decode_supported(method):
            with pytest.raises(ValueError, match="no static decode layout"):
                generate_many(model, method, prompts, 9, chunk_size=8, eos_token_id=[7, 11])
            return
        pool = DecoderPool()
        many = generate_many(model, method, prompts, 9, chunk_size=8, eos_token_id=[7, 11],
                             repetition_penalty=1.2, pool=pool, batch=6)
        again = generate_many(model, method, prompts[:2], 9, chunk_size=8, eos_token_id=[7, 11],
                              repetition_penalty=1.2, pool=pool, batch=6)
    for one, got in zip(ones, many):
        assert got.tokens == one.tokens
        assert got.stopped_by_eos == one.stopped_by_eos
        assert got.cache_bytes_after_prefill == one.cache_bytes_after_prefill
        assert got.cache_bytes_final == one.cache_bytes_final
    assert [r.tokens for r in again] == [r.tokens for r in many[:2]]


def test_a_token_that_hits_eos_first_and_zero_new_tokens():
    model = tiny_model("qwen2", dtype=torch.float64)
    method = make_method("swa", sinks=2, window=6)
    prompt = torch.randint(0, 300, (1, 9), generator=torch.Generator().manual_seed(1))
    with attach(model, method):
        first = int(prefill(model, method, method.new_cache(model), prompt).argmax(-1))
        (hit,) = generate_many(model, method, [prompt], 5, eos_token_id=first)
        (none,) = generate_many(model, method, [prompt], 0)
    assert hit.tokens == [[]] and hit.stopped_by_eos == [True]
    assert none.tokens == [[]] and none.stopped_by_eos == [False]


def test_every_registered_method_either_has_a_layout_or_decodes_eagerly():
    for name in _all_methods():
        method = _method(name, 3, 10)
        layout = method.decode_layout(100)
        assert layout is None or layout.capacity <= 100 or layout.evicts, name


@pytest.mark.parametrize("name", ["full", "swa", "ahn-gdn", "ahn-dn", "ahn-mamba2"])
def test_compiled_step_equals_the_uncompiled_step(name):
    """The step's pieces through torch.compile (dynamo's trace and AOT functionalisation, run by `aot_eager`; the
    GPU test runs inductor) compute the uncompiled step's function: the in-place buffer writes (K/V slots, AHN
    state and gate rings, validity, positions) survive functionalisation, and one compiled graph serves every
    layer. fp64: the two run the same ops, so they agree far inside TOL."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = tiny_model("qwen3", dtype=torch.float64)
    method = _method(name, 3, 10)
    ids = torch.randint(0, 300, (1, 17), generator=torch.Generator().manual_seed(2))
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        cache = method.new_cache(model)
        first = int(prefill(model, method, cache, ids, chunk_size=6).argmax(-1))
        plain = StaticDecoder(model, method, 2, 40, repetition_penalty=1.3, compile=False)
        fast = StaticDecoder(model, method, 2, 40, repetition_penalty=1.3, compile="aot_eager")
        for dec in (plain, fast):
            dec.load(0, cache, ids, first)
        for step in range(12):  # past the window's edge: tokens leave it from the 4th step on
            a, b = plain.step().clone(), fast.step().clone()
            assert torch.equal(a[0], b[0]), step
            assert (plain.logits[0] - fast.logits[0]).abs().max() <= TOL * plain.logits[0].abs().max(), step
        for buffers in (zip(plain.k, fast.k), zip(plain.v, fast.v)):
            for x, y in buffers:
                assert torch.equal(x[0], y[0])
        for mx, my in zip(plain.memory, fast.memory):
            for key in mx:
                assert (mx[key][0] - my[key][0]).abs().max() <= TOL * max(1.0, mx[key][0].abs().max().item()), key
    assert fast.compile_backend == "aot_eager"
    assert counters["stats"]["unique_graphs"] == 3, dict(counters["stats"])  # begin, one layer for all, finish


@pytest.mark.parametrize("tied", [False, True])
def test_floor_bytes_are_the_weights_the_kv_buffers_and_the_memory(tied):
    """The step's byte floor from the config (transformers' own parameter count, the buffer shapes the layout
    implies, AHN's fp32 state and gate rings), not from the decoder's tensors."""
    model = tiny_model("qwen2", tie_word_embeddings=tied)
    cfg, method = model.config, _method("ahn-gdn", 3, 10)
    with attach(model, method):
        floor = StaticDecoder(model, method, 2, 40).floor_nbytes()
        params = model.num_parameters()  # the attached cells included, a tied matrix once
    embed = 0 if tied else cfg.vocab_size * cfg.hidden_size
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    capacity = 3 + 10
    kv = 2 * cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * capacity * head_dim * 4  # B = 2, K and V, fp32
    heads = cfg.num_attention_heads
    state = cfg.num_hidden_layers * 2 * heads * head_dim * head_dim * 4
    gates = cfg.num_hidden_layers * 2 * 10 * heads * 2 * 4  # beta and g for each of the 10 ring slots
    assert floor == (params - embed) * 4 + kv + state + gates


def test_inductor_lowers_the_step_on_the_cpu():
    """The step through inductor itself (the GPU's default compiler; C++ here instead of Triton), not just
    dynamo's trace: ahn-gdn's memory step runs in its one-pass form there, the uncompiled step in the recurrent
    one. fp32, within the rounding of the model's chain per decoded token; the comparison stops at a step whose
    top two logits are closer than the bound (a tie may break either way on another CPU)."""
    import torch._dynamo

    from tests.tolerance import model_chain_ops, rounding_bound

    torch._dynamo.reset()
    model = tiny_model("qwen2", dtype=torch.float32)
    method = _method("ahn-gdn", 3, 10)
    ids = torch.randint(0, 300, (1, 17), generator=torch.Generator().manual_seed(2))
    with attach(model, method):
        randomize_ahn(method)
        cache = method.new_cache(model)
        first = int(prefill(model, method, cache, ids, chunk_size=6).argmax(-1))
        plain = StaticDecoder(model, method, 2, 40, compile=False)
        fast = StaticDecoder(model, method, 2, 40, compile="inductor")
        for dec in (plain, fast):
            dec.load(0, cache, ids, first)
        for step in range(1, 9):  # past the window's edge: tokens leave it from the 4th step on
            a, b = plain.step().clone(), fast.step().clone()
            want = plain.logits[0]
            n_ops = step * model_chain_ops(model.config, plain.layout.capacity)
            bound = rounding_bound(torch.float32, n_ops, want.abs().max().item())
            assert (fast.logits[0] - want).abs().max().item() <= bound, step
            top = want.topk(2).values
            if top[0] - top[1] <= 2 * bound:
                break  # a near-tie: the two may pick differently from here on
            assert torch.equal(a[0], b[0]), step
    assert fast.compile_backend == "inductor"


def test_compile_failure_falls_back_before_capture_and_stops_with_loaded_rows(monkeypatch):
    """A backend that fails: before a capture (scratch rows) the step warns and runs uncompiled; with loaded rows
    (no graphs) it stops and names the switch, rather than redo a half-applied step."""
    import torch._dynamo

    def broken(gm, example_inputs):
        raise RuntimeError("no compiler here")

    torch._dynamo.reset()
    model = tiny_model("qwen2", dtype=torch.float64)
    method = make_method("swa", sinks=2, window=6)
    prompt = torch.randint(0, 300, (1, 9), generator=torch.Generator().manual_seed(1))
    with attach(model, method):
        cache = method.new_cache(model)
        first = int(prefill(model, method, cache, prompt).argmax(-1))
        dec = StaticDecoder(model, method, 1, 30, compile=broken)
        with pytest.warns(UserWarning, match="running the pieces uncompiled"):
            dec._warm_up(retry=True)
        assert dec.compile_backend is None
        torch._dynamo.reset()
        dec = StaticDecoder(model, method, 1, 30, compile=broken)
        dec.load(0, cache, prompt, first)
        with pytest.raises(RuntimeError, match="AHN_HARNESS_STEP_COMPILE=0"):
            dec.step()


def test_full_attention_buffer_is_whole_pieces_and_decodes_like_the_eager_engine(monkeypatch):
    """Past one piece, full attention's buffer is rounded up to whole pieces of the split reduction (so `auto`
    cuts it into pieces of 1,024 slots on CUDA); the spare slots stay masked: the step's logits equal the eager
    engine's, with the reduction in pieces, and the row's bytes are those of its filled slots."""
    from baselines.decode_layout import PIECE
    from baselines.static_decode import auto_splits

    monkeypatch.delenv("AHN_HARNESS_DECODE_SPLITS", raising=False)
    full = make_method("full")
    assert full.decode_layout(100).capacity == 100 and full.decode_layout(PIECE).capacity == PIECE
    lay = full.decode_layout(131_072 + 5_000)
    assert lay.capacity % PIECE == 0 and lay.capacity - PIECE < 136_072 <= lay.capacity
    assert auto_splits(lay.capacity, torch.device("cuda")) == lay.capacity // PIECE
    monkeypatch.setenv("AHN_HARNESS_DECODE_SPLITS", "4")  # pieces on the CPU too: 2,048 slots in 4
    model = tiny_model("qwen2", dtype=torch.float64)
    T, steps = PIECE + 6, 3
    ids = torch.randint(0, 300, (1, T), generator=torch.Generator().manual_seed(9))
    with attach(model, full):
        cache = full.new_cache(model)
        tok = int(prefill(model, full, cache, ids, chunk_size=512).argmax(-1))
        decoder = StaticDecoder(model, full, batch=1, max_tokens=T + steps + 1)
        assert decoder.layout.capacity == 2 * PIECE and decoder.splits == 4
        decoder.reset()
        ref = full.new_cache(model)
        prefill(model, full, ref, ids, chunk_size=512)
        decoder.load(0, cache, ids, tok)
        for step in range(steps):
            eager = decode_step(model, full, ref, torch.tensor([tok]))
            picked = decoder.step()
            assert (decoder.logits[0] - eager[0]).abs().max().item() <= TOL * eager.abs().max().item(), step
            tok = int(eager.argmax(-1))
            assert int(picked[0]) == tok
        assert decoder.row_nbytes(0) == ref.nbytes()


def test_attention_setting_picks_flex_only_where_inductor_compiles_on_cuda(monkeypatch):
    from baselines.static_decode import attention_setting, check_settings

    monkeypatch.delenv("AHN_HARNESS_DECODE_ATTENTION", raising=False)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert attention_setting(cuda, "inductor") == "flex"
    assert attention_setting(cuda, None) == "products" and attention_setting(cuda, "aot_eager") == "products"
    assert attention_setting(cpu, "inductor") == "products"
    monkeypatch.setenv("AHN_HARNESS_DECODE_ATTENTION", "products")
    assert attention_setting(cuda, "inductor") == "products"
    monkeypatch.setenv("AHN_HARNESS_DECODE_ATTENTION", "flex")
    assert attention_setting(cpu, None) == "flex"
    monkeypatch.setenv("AHN_HARNESS_DECODE_ATTENTION", "flash")
    with pytest.raises(ValueError, match="AHN_HARNESS_DECODE_ATTENTION='flash'; valid: auto, products, flex"):
        check_settings()
    monkeypatch.delenv("AHN_HARNESS_DECODE_ATTENTION")
    with pytest.raises(ValueError, match="attention='flash'; valid: products, flex"):
        StaticDecoder(tiny_model("qwen2"), make_method("swa", sinks=2, window=6), 1, 30, attention="flash")


def test_flex_options_parse_the_switch_and_name_the_valid_keys(monkeypatch):
    from baselines.static_decode import FLEX_DECODE_OPTIONS, check_settings, flex_options, split_kv

    monkeypatch.delenv("AHN_HARNESS_FLEX_DECODE", raising=False)
    assert flex_options() == FLEX_DECODE_OPTIONS and flex_options() is not FLEX_DECODE_OPTIONS  # a copy
    # the slot splits: torch's 2 per SM over the batch's KV heads, rounded down to a power of two (H100: 132 SMs)
    assert flex_options(split_kv(1, 2, 132)) == FLEX_DECODE_OPTIONS | {"SPLIT_KV": 128}
    assert [split_kv(b, 2, 132) for b in (1, 2, 4, 8, 16, 33, 200)] == [128, 64, 32, 16, 8, 4, 1]
    assert split_kv(1, 8, 132) == 32 and split_kv(1, 2, 78) == 64  # 2 * 16 = 32; 2 * 39 = 78 -> 64
    monkeypatch.setenv("AHN_HARNESS_FLEX_DECODE", "default")
    assert flex_options() == flex_options(128) == {}
    monkeypatch.setenv("AHN_HARNESS_FLEX_DECODE", "BLOCK_N=128,num_warps=8")
    assert flex_options() == flex_options(128) == {"BLOCK_N": 128, "num_warps": 8}  # as given
    for bad in ("BLOCK_M=64", "BLOCK_N=sixty", "num_stages=0", "BLOCK_N"):
        monkeypatch.setenv("AHN_HARNESS_FLEX_DECODE", bad)
        with pytest.raises(ValueError, match=f"AHN_HARNESS_FLEX_DECODE='{bad}'.*BLOCK_N, num_stages, num_warps"):
            check_settings()


def test_auto_splits_cut_the_slot_reduction_on_cuda_only(monkeypatch):
    from baselines.static_decode import auto_splits, compile_setting

    monkeypatch.delenv("AHN_HARNESS_DECODE_SPLITS", raising=False)
    monkeypatch.delenv("AHN_HARNESS_STEP_COMPILE", raising=False)
    # unset is "auto" (measured faster on the GPU): pieces and inductor on CUDA, one piece and no compile on the CPU
    assert auto_splits(32768, torch.device("cuda")) == 32 and auto_splits(32768, torch.device("cpu")) == 1
    assert compile_setting(torch.device("cuda")) == "inductor" and compile_setting(torch.device("cpu")) is None
    monkeypatch.setenv("AHN_HARNESS_STEP_COMPILE", "0")
    assert compile_setting(torch.device("cuda")) is None
    monkeypatch.setenv("AHN_HARNESS_STEP_COMPILE", "auto")
    assert compile_setting(torch.device("cuda")) == "inductor" and compile_setting(torch.device("cpu")) is None
    monkeypatch.setenv("AHN_HARNESS_DECODE_SPLITS", "1")
    assert auto_splits(32768, torch.device("cuda")) == 1
    monkeypatch.setenv("AHN_HARNESS_DECODE_SPLITS", "auto")
    assert auto_splits(32768, torch.device("cuda")) == 32  # pieces of 1,024 slots
    assert auto_splits(128 + 1000, torch.device("cuda")) == 1  # gcd(1128, 1) = 1: a short buffer stays whole
    assert auto_splits(32768, torch.device("cpu")) == 1
    monkeypatch.setenv("AHN_HARNESS_DECODE_SPLITS", "64")
    assert auto_splits(32768, torch.device("cpu")) == 64
