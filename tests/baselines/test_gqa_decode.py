"""The static step's FlexAttention with a GQA group that is not a power of two (Qwen2.5-0.5B: 14 query heads over
2 KV heads, a group of 7), folded into the query rows (`static_decode.group_as_rows`), against the products and
the eager engine, and the torch decision the fold exists for (docs/GQA_DECODE.md)."""

from __future__ import annotations

import pytest
import torch

from ahn.method import AHNMethod
from baselines import attach, make_method
from baselines.engine import apply_repetition_penalty, decode_step, prefill
from baselines.static_decode import (
    StaticDecoder,
    decode_attention,
    flex_decode_attention,
    group_as_rows,
    slot_blocks,
)
from tests.tiny_models import randomize_ahn, tiny_model
from tests.tolerance import model_chain_ops, rounding_bound


def _inputs(b: int, h: int, hkv: int, c: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, 1, 8, generator=g, dtype=dtype)
    k = torch.randn(b, hkv, c, 8, generator=g, dtype=dtype)
    v = torch.randn(b, hkv, c, 8, generator=g, dtype=dtype)
    valid = torch.rand(b, c, generator=g) > 0.5
    valid[:, 0] = True
    valid[-1] = False
    valid[-1, 5] = True  # a row that sees one slot
    bias = torch.zeros(b, c, dtype=dtype).masked_fill(~valid, float("-inf"))[:, None]
    return q, k, v, bias


@pytest.mark.parametrize(("h", "hkv"), [(14, 2), (6, 2), (3, 1), (4, 2), (2, 2)])
def test_flex_with_the_group_as_rows_equals_the_products(h, hkv):
    """The group as query rows computes `decode_attention`'s function (each query head over its own KV head,
    masked slots without weight): fp64, uncompiled, so the two differ by rounding only (~1e-15 at these sizes;
    1e-12 leaves room for any summation order and none for a head paired with the wrong KV head)."""
    b, c = 3, 37
    q, k, v, bias = _inputs(b, h, hkv, c, seed=h)
    ref = decode_attention(q, k, v, bias, 0.3)
    out = flex_decode_attention(q, k, v, bias, 0.3, slot_blocks(c, torch.device("cpu"), h // hkv), rows=True)
    assert out.shape == ref.shape == (b, h, 1, 8)
    assert (out - ref).abs().max().item() < 1e-12
    rep = h // hkv
    assert torch.equal(out[-1], v[-1][:, 5:6].repeat_interleave(rep, 0))  # one slot: its value exactly, per head
    heads = flex_decode_attention(q, k, v, bias, 0.3, slot_blocks(c, torch.device("cpu")))
    assert (heads - ref).abs().max().item() < 1e-12  # the former call: the same function


def test_group_as_rows_folds_only_where_the_decoding_kernel_would_be_missed():
    assert group_as_rows(14, 2, "flex") and group_as_rows(12, 4, "flex") and group_as_rows(6, 2, "flex")
    assert not any(group_as_rows(h, hkv, "flex") for h, hkv in ((16, 2), (32, 8), (4, 4), (8, 1)))
    assert group_as_rows(16, 2, "flex-rows") and group_as_rows(4, 4, "flex-rows")
    assert not group_as_rows(14, 2, "flex-heads")


def test_torch_lowers_only_power_of_two_groups_to_its_decoding_kernel():
    """The torch decision behind the fold, asked directly with the 0.5B step's shapes (B = 5, 132,096 slots):
    14 query heads over 2 KV heads go to the main FlexAttention kernel, the same group as 7 query rows of 2
    heads (and the 3B shape's 16 / 2) to the decoding kernel. If torch starts taking any group, the first
    assertion fails and the fold is no longer needed."""
    flex_decoding = pytest.importorskip("torch._inductor.kernel.flex.flex_decoding")
    from torch._inductor.sizevars import SizeVarAllocator
    from torch._inductor.virtualized import V

    class Graph:
        sizevars = SizeVarAllocator()

    class Node:
        def __init__(self, size):
            self.size = size

        def get_size(self):
            return self.size

    c = 132096

    def decodes(query: list[int], kv_heads: int, head_dim: int = 64) -> bool:
        return flex_decoding._use_flex_decoding(Node(query), Node([1, 1, 1, c // 128]),
                                                Node([5, kv_heads, c, head_dim]), {}, query[1] != kv_heads)

    with V.set_graph_handler(Graph()):
        assert not decodes([5, 14, 1, 64], 2)  # Qwen2.5-0.5B's heads: the main kernel
        assert decodes([5, 2, 7, 64], 2)  # its group as rows: the decoding kernel
        assert decodes([5, 16, 1, 128], 2, 128)  # Qwen2.5-3B's heads: the decoding kernel as they are


@pytest.mark.parametrize("name", ["full", "swa", "ahn-gdn"])
def test_static_step_with_the_group_as_rows_equals_the_eager_step(name):
    """A model with 0.5B's head counts (14 / 2, head dim 8 here) through the static step with flex (the group
    folded into the rows, uncompiled) against the eager engine, token by token, a loaded row beside an empty one:
    fp32, within the rounding bound of the model's chain per decoded token (`tests/tolerance.py`); the greedy
    token must agree unless the top two logits lie within twice the bound. AHN's memory read uses the query as
    heads, untouched by the fold."""
    model = tiny_model("qwen2", hidden_size=112, num_attention_heads=14, num_key_value_heads=2)
    method = make_method("full") if name == "full" else make_method(name, sinks=3, window=10)
    ids = torch.randint(0, 300, (1, 21), generator=torch.Generator().manual_seed(4))
    steps = 10
    with attach(model, method):
        if isinstance(method, AHNMethod):
            randomize_ahn(method)
        decoder = StaticDecoder(model, method, batch=2, max_tokens=21 + steps + 1, repetition_penalty=1.3,
                                attention="flex", compile=False)
        assert decoder.group_rows and decoder.blocks.seq_lengths[0] == 7
        cache, ref_cache = method.new_cache(model), method.new_cache(model)
        first = int(prefill(model, method, cache, ids, chunk_size=6).argmax(-1))
        prefill(model, method, ref_cache, ids, chunk_size=6)
        decoder.load(1, cache, ids, first)
        seen, tok = torch.cat([ids, torch.tensor([[first]])], 1), first
        for step in range(1, steps + 1):
            eager = apply_repetition_penalty(decode_step(model, method, ref_cache, torch.tensor([tok])), seen, 1.3)
            picked = decoder.step()
            want = eager[0]
            bound = rounding_bound(torch.float32, step * model_chain_ops(model.config, decoder.layout.capacity),
                                   want.abs().max().item())
            assert (decoder.logits[1] - want).abs().max().item() <= bound, step
            top = want.topk(2).values
            if top[0] - top[1] <= 2 * bound:
                break  # a near-tie: the two may pick differently from here on
            tok = int(want.argmax(-1))
            assert int(picked[1]) == tok, step
            seen = torch.cat([seen, torch.tensor([[tok]])], 1)


def test_compiled_step_with_the_group_as_rows_is_one_graph_per_piece():
    """The folded call through dynamo and AOT functionalisation (`aot_eager`) computes the uncompiled step's
    function with one graph for begin, every layer and finish, and no recompilation over the steps (a guard that
    failed each step would compile again per token). fp32, within the rounding bound of the model's chain per
    token (the same ops; functionalisation may only reorder the buffer writes)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = tiny_model("qwen2", hidden_size=112, num_attention_heads=14, num_key_value_heads=2)
    method = make_method("full")
    ids = torch.randint(0, 300, (1, 17), generator=torch.Generator().manual_seed(2))
    with attach(model, method):
        cache = method.new_cache(model)
        first = int(prefill(model, method, cache, ids, chunk_size=6).argmax(-1))
        plain = StaticDecoder(model, method, 2, 40, attention="flex", compile=False)
        fast = StaticDecoder(model, method, 2, 40, attention="flex", compile="aot_eager")
        for dec in (plain, fast):
            dec.load(0, cache, ids, first)
        want = []
        for _ in range(8):  # first the uncompiled steps (torch's eager FlexAttention traces a wrapper of its own)
            want.append((plain.step()[0].item(), plain.logits[0].clone()))
        counters.clear()
        for step, (tok, logits) in enumerate(want, 1):
            assert fast.step()[0].item() == tok, step
            bound = rounding_bound(torch.float32, step * model_chain_ops(model.config, fast.layout.capacity),
                                   logits.abs().max().item())
            assert (fast.logits[0] - logits).abs().max().item() <= bound, step
    assert fast.group_rows and fast.compile_backend == "aot_eager"
    assert counters["stats"]["unique_graphs"] == 3, dict(counters["stats"])
    assert not counters["recompiles"], dict(counters["recompiles"])
