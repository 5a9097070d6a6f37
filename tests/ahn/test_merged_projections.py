"""The cells' projections of the hidden state x as one matrix product (the static one-token decode step).

`write_gates(x)` and `output(r, x)` (one nn.Linear per projection) are the reference; `project_x_merged` on
`x_weight()` must give the same projections, gates and output, and the static step must use it: one product
per layer for all of the cell's projections of x.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from ahn.cells import CELL_KINDS
from baselines import attach, make_method
from baselines.engine import prefill
from baselines.static_decode import StaticDecoder
from tests.ahn.test_cells import DH, H, qkv, randomized
from tests.tiny_models import randomize_ahn, tiny_model

EXPECTED = {  # the cells' Linear layers on x (docs/AHN.md §5), write gates' first
    "gdn": (("b_proj", "a_proj"), ("g_proj",)),
    "dn": (("b_proj",), ("g_proj",)),
    "mamba2": (("dt_proj",), ("g_proj",)),
}


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_x_projections_name_every_linear_layer_on_x(kind):
    cell = randomized(kind)
    assert (cell.write_projections, cell.output_projections) == EXPECTED[kind]
    linears = {name for name, m in cell.named_children() if isinstance(m, nn.Linear)}
    assert set(cell.x_projections) == linears and len(cell.x_projections) == len(linears)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_merged_projections_give_the_plain_gates_and_output(kind):
    """fp64: each merged output is the same dot product over x as its own Linear computes, only inside a
    wider product (so at most a different blocking of the sum), hence assert_close's default fp64 tolerances."""
    cell = randomized(kind)
    _, _, _, x = qkv(5)
    r = torch.randn(2, 5, H, DH, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    weight, bias = cell.x_weight()
    layers = [getattr(cell, name) for name in cell.x_projections]
    assert weight.shape == (sum(m.out_features for m in layers), cell.hidden_size)
    assert (bias is None) == (kind != "mamba2")  # Mamba2's dt_proj and g_proj have biases, GDN's and DN's none
    with torch.no_grad():
        proj = cell.project_x_merged(x, weight, bias)
        assert list(proj) == list(cell.x_projections)
        for name, m in zip(cell.x_projections, layers, strict=True):
            assert_close(proj[name], m(x))
        plain, merged = cell.write_gates(x), cell.write_gates_from(proj)
        assert list(merged) == list(cell.gate_names)
        for name in cell.gate_names:
            assert_close(merged[name], plain[name])
        assert_close(cell.output_from(r, proj, x.dtype), cell.output(r, x))


class _ProductsReading(TorchDispatchMode):
    """Counts the matrix products whose operands share storage with one of `weights`, by weight name."""

    PRODUCTS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default,
                torch.ops.aten.baddbmm.default, torch.ops.aten.mv.default, torch.ops.aten.addmv.default}

    def __init__(self, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.storage = {w.untyped_storage().data_ptr(): name for name, w in weights.items()}
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.PRODUCTS:
            for a in args:
                if isinstance(a, torch.Tensor) and a.untyped_storage().data_ptr() in self.storage:
                    self.reads.append(self.storage[a.untyped_storage().data_ptr()])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_static_step_projects_x_with_one_product_per_layer(kind):
    """One static decode step (past the window's edge: a token is written and read): the cell's Linear weights
    on x are read by no product, the merged weight by exactly one per layer. The static step's values against
    the eager engine are `tests/baselines/test_static_decode.py`'s."""
    model = tiny_model("qwen2", dtype=torch.float64)
    method = make_method(f"ahn-{kind}", sinks=3, window=10)
    ids = torch.randint(0, 300, (1, 21), generator=torch.Generator().manual_seed(4))
    with attach(model, method):
        randomize_ahn(method)
        cache = method.new_cache(model)
        first = int(prefill(model, method, cache, ids, chunk_size=6).argmax(-1))
        decoder = StaticDecoder(model, method, batch=2, max_tokens=40, compile=False)
        decoder.load(0, cache, ids, first)
        weights = {}
        for i, (block, memory) in enumerate(zip(method.blocks, decoder.memory, strict=True)):
            fn = block.fn
            want = fn.x_weight()[0]
            assert memory["weight:x"].shape == (sum(getattr(fn, n).out_features for n in fn.x_projections),
                                                model.config.hidden_size)
            assert torch.equal(memory["weight:x"], want)
            weights[f"merged{i}"] = memory["weight:x"]
            weights |= {f"{name}{i}": getattr(fn, name).weight for name in fn.x_projections}
        with _ProductsReading(weights) as mode, torch.no_grad():
            decoder.step()
    assert sorted(mode.reads) == [f"merged{i}" for i in range(len(method.blocks))]


def test_reset_keeps_the_merged_weight_and_load_refreshes_it_from_the_cell():
    """`StaticDecoder.reset()` zeroes the rows' memory but leaves the merged weight (a capture's warm-up steps
    read it); loading a row copies the cell's current weights in (so a cell changed since the buffers were built
    is what the step uses)."""
    model = tiny_model("qwen2", dtype=torch.float64)
    method = make_method("ahn-mamba2", sinks=3, window=10)
    ids = torch.randint(0, 300, (1, 12), generator=torch.Generator().manual_seed(5))
    with attach(model, method):
        randomize_ahn(method)
        cache = method.new_cache(model)
        first = int(prefill(model, method, cache, ids).argmax(-1))
        decoder = StaticDecoder(model, method, batch=1, max_tokens=30, compile=False)
        fn = method.blocks[0].fn
        decoder.reset()
        assert not decoder.memory[0]["state"].any()
        assert torch.equal(decoder.memory[0]["weight:x"], fn.x_weight()[0])
        with torch.no_grad():
            fn.g_proj.bias.add_(1.0)
        decoder.load(0, cache, ids, first)
        weight, bias = fn.x_weight()
        assert torch.equal(decoder.memory[0]["weight:x"], weight) and torch.equal(decoder.memory[0]["weight:x_bias"], bias)
