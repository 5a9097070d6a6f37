"""GPU only: the static step replayed as one CUDA graph equals the same step run eagerly, and both equal the
eager engine; the cuDNN causal path equals the masked reference.

fp32 on the GPU: graph replay runs the very kernels of the same step run without the graph, so the two agree
bit for bit; the step compiled by inductor (fused kernels, other orders of summation) and the eager engine
differ from it by fp32 rounding over a few layers, far below 1e-4.
"""

from __future__ import annotations

import pytest
import torch

from ahn.method import AHNMethod
from baselines import attach, make_method
from baselines.attention import causal_attention, masked_attention
from baselines.engine import decode_step, prefill
from baselines.static_decode import StaticDecoder
from tests.tiny_models import randomize_ahn, tiny_model

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)


@pytest.mark.parametrize("name", ["full", "swa", "ahn-gdn", "ahn-dn", "ahn-mamba2"])
def test_graph_replay_equals_eager_static_and_engine(name):
    model = tiny_model("qwen2", hidden_size=128, num_attention_heads=4, num_key_value_heads=2).cuda()
    ids = torch.randint(0, 300, (1, 150), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    method = make_method(name) if name == "full" else make_method(name, sinks=8, window=64)
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        caches = [method.new_cache(model) for _ in range(3)]
        first = int(prefill(model, method, caches[0], ids, chunk_size=40).argmax(-1))
        for c in caches[1:]:
            prefill(model, method, c, ids, chunk_size=40)
        graphed = StaticDecoder(model, method, 3, 400, graphs=True, compile=False)
        graphed.capture()
        eager = StaticDecoder(model, method, 3, 400, graphs=False, compile=False)
        fused = StaticDecoder(model, method, 3, 400, graphs=True, compile="inductor")  # FlexAttention's kernel
        fused.capture()
        products = StaticDecoder(model, method, 3, 400, graphs=True, compile="inductor", attention="products")
        products.capture()
        for dec in (graphed, eager, fused, products):
            for row in (0, 2):
                dec.load(row, caches[row], ids, first)
        tok = torch.tensor([first], device="cuda")
        for _ in range(20):
            a, b = graphed.step().clone(), eager.step().clone()
            c, d = fused.step().clone(), products.step().clone()
            ref = decode_step(model, method, caches[1], tok)
            assert torch.equal(graphed.logits[[0, 2]], eager.logits[[0, 2]])
            assert torch.equal(a[[0, 2]], b[[0, 2]])
            for dec in (graphed, fused, products):
                rel = (dec.logits[0] - ref[0]).norm() / ref[0].norm()
                assert rel.item() < 1e-4
            assert torch.equal(c[[0, 2]], a[[0, 2]]) and torch.equal(d[[0, 2]], a[[0, 2]])
            tok = a[:1]
    assert graphed._graph is not None and fused._graph is not None and products._graph is not None
    assert fused.compile_backend == "inductor" == products.compile_backend  # compiled, not fallen back
    assert fused.attention == "flex" and products.attention == "products"


@pytest.mark.parametrize("name", ["full", "ahn-gdn"])
def test_batched_rows_equal_each_request_decoded_alone(name):
    """Three different requests (prompts of 150, 97 and 40 tokens over 8 sinks + a window of 64: two evicting
    at every step, one inside the window) decoded together by the compiled step (FlexAttention's kernel with the
    slot splits of B = 3) equal each decoded alone at B = 1 (other splits, other GEMM shapes): fp32, so greedy
    ids equal at every step and logits within 1e-4 relative (fp32 rounding over two layers, as above). A row
    reading another row's slots, state or position would compute another request's logits."""
    model = tiny_model("qwen2", hidden_size=128, num_attention_heads=4, num_key_value_heads=2).cuda()
    g = torch.Generator("cuda").manual_seed(3)
    prompts = [torch.randint(0, 300, (1, n), device="cuda", generator=g) for n in (150, 97, 40)]
    method = make_method(name) if name == "full" else make_method(name, sinks=8, window=64)
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        caches = [method.new_cache(model) for _ in prompts]
        firsts = [int(prefill(model, method, c, ids, chunk_size=40).argmax(-1)) for c, ids in zip(caches, prompts)]
        together = StaticDecoder(model, method, 3, 400, graphs=True, compile="inductor")
        together.capture()
        for row, (cache, ids, first) in enumerate(zip(caches, prompts, firsts)):
            together.load(row, cache, ids, first)
        batched_ids, batched_logits = [], []
        for _ in range(24):
            batched_ids.append(together.step().clone())
            batched_logits.append(together.logits.clone())
        alone = StaticDecoder(model, method, 1, 400, graphs=True, compile="inductor")
        alone.capture()
        for row, (cache, ids, first) in enumerate(zip(caches, prompts, firsts)):
            alone.reset()
            alone.load(0, cache, ids, first)
            for t in range(24):
                tok = alone.step().clone()
                assert int(tok[0]) == int(batched_ids[t][row]), (row, t)
                ref = alone.logits[0]
                rel = ((batched_logits[t][row] - ref).norm() / ref.norm()).item()
                assert rel < 1e-4, (row, t, rel)
    assert together.attention == "flex" and together.flex_options["SPLIT_KV"] != alone.flex_options["SPLIT_KV"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flex_decoding_kernel_equals_the_products(dtype):
    """FlexAttention compiled for one query per row (inductor's decoding kernel) at the 3B shape (16 query heads
    on 2 KV heads, head dim 128), against the products in fp64: fp32 within 1e-4 relative; bf16 within 2^-6
    (each input is rounded to 8 bits of mantissa, the output once more)."""
    from baselines.static_decode import decode_attention, flex_decode_attention, slot_blocks

    g = torch.Generator("cuda").manual_seed(0)
    b, c = 3, 4096 + 128
    q = torch.randn(b, 16, 1, 128, device="cuda", generator=g)
    k = torch.randn(b, 2, c, 128, device="cuda", generator=g)
    v = torch.randn(b, 2, c, 128, device="cuda", generator=g)
    valid = torch.rand(b, c, device="cuda", generator=g) > 0.3
    valid[1, 100:] = False  # a short row
    bias = torch.zeros(b, c, device="cuda").masked_fill(~valid, float("-inf"))[:, None]
    ref = decode_attention(q.double(), k.double(), v.double(), bias.double(), 128 ** -0.5)
    out = torch.compile(flex_decode_attention)(q.to(dtype), k.to(dtype), v.to(dtype), bias, 128 ** -0.5,
                                               slot_blocks(c, q.device))
    rel = ((out.double() - ref).norm() / ref.norm()).item()
    assert rel < (1e-4 if dtype == torch.float32 else 2 ** -6), rel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_attention_equals_masked_reference(dtype):
    g = torch.Generator("cuda").manual_seed(0)
    q = torch.randn(1, 8, 700, 64, device="cuda", generator=g).to(dtype)
    k = torch.randn(1, 2, 700, 64, device="cuda", generator=g).to(dtype)
    v = torch.randn(1, 2, 700, 64, device="cuda", generator=g).to(dtype)
    vis = torch.ones(700, 700, dtype=torch.bool, device="cuda").tril()
    ref = masked_attention(q.double(), k.double(), v.double(), vis, 0.125)
    out = causal_attention(q, k, v, 0.125).double()
    bound = 1e-5 if dtype == torch.float32 else 2e-2  # fp32 / bf16 operands (docs/PERFORMANCE.md's levels)
    assert ((out - ref).norm() / ref.norm()).item() < bound
