"""The cost model of AHN: its parameters, the memory's FLOPs and bytes, from the cell table of `ahn/layout.py`.

Torch-free (the modules in `ahn/cells.py` read the same table), so `harness info` stays instant. The equations
and parameter shapes behind each term are in `docs/AHN.md`; the paper's accounting in `docs/COSTS.md`.
"""

from __future__ import annotations

from typing import Any

from ahn.layout import CellLayout, cell_layout
from baselines.costs import CostModel, ahn_state_bytes
from baselines.model_configs import ModelDims


def _params_per_layer(layout: CellLayout, d: int, h: int, dh: int) -> int:
    """Released parameters of one layer's cell; each holds a zero-initialised per-head output map [H, dh, dh]."""
    out_map = dh * dh * h
    if layout.kind == "gdn":  # b/a/g projections, A_log, D (unused), dt_bias, shared o_norm [dh]
        return 3 * d * h + 3 * h + dh + out_map
    if layout.kind == "dn":  # b/g projections, shared o_norm [dh]
        return 2 * d * h + dh + out_map
    return 2 * d * h + 4 * h + dh * h + out_map  # mamba2: dt/g projections with biases, dt_bias, A_log, norm [H·dh]


class AHNCosts(CostModel):
    """Sinks + window, plus a cell per layer: every non-sink token gets its write gates on entry (kept in the
    cache while it is in the window); each token leaving the window is written into the fp32 state and read by
    the query `W` positions later (one write per read)."""

    def __init__(self, *, cell: str = "gdn", **settings: Any) -> None:
        super().__init__(cell=cell, **settings)
        self.layout = cell_layout(cell)

    def params_extra(self, dims: ModelDims) -> int:
        return dims.num_layers * _params_per_layer(self.layout, dims.hidden_size, dims.num_heads, dims.head_dim)

    # ---- the paper's Table 1 terms, per layer and compressed token: Sᵀk-style update, gates, read --------
    def paper_memory_flops(self, dims: ModelDims, evicted: int, window_total: int) -> int:
        d, hq, dh = dims.hidden_size, dims.num_heads, dims.head_dim
        return 2 * evicted * (dh * dh * hq + self.layout.paper_gates * d * hq + dh * dh * hq)

    def paper_memory_elements(self, dims: ModelDims) -> int:
        return dims.head_dim * dims.head_dim * dims.num_heads

    # ---- this implementation ------------------------------------------------------------------------------
    def cell_flops(self, dims: ModelDims, n_written: int, n_read: int) -> int:
        """Recurrent-form cell, all layers and heads: dh×dh mat-vecs per written token and per reading query."""
        per_write, per_read = self.layout.matvecs
        matvec = 2 * dims.head_dim * dims.head_dim
        return dims.num_layers * dims.num_heads * matvec * (per_write * n_written + per_read * n_read)

    def gate_flops(self, dims: ModelDims, n_gated: int, n_read: int) -> int:
        """Gate projections from the layer input x: write gates per token entering the gate cache, the read
        gates per reading query; one `D`-long dot product per gate per head."""
        per_gate = 2 * dims.hidden_size * dims.num_heads
        writes = len(self.layout.write_gates)
        return dims.num_layers * per_gate * (writes * n_gated + self.layout.read_gates * n_read)

    def output_flops(self, dims: ModelDims, n_read: int) -> int:
        """The per-head output map O_i (dh×dh) on each reading query."""
        return dims.num_layers * dims.num_heads * 2 * dims.head_dim * dims.head_dim * n_read

    def _work(self, dims: ModelDims, n_gated: int, n_moved: int) -> int:
        return (self.cell_flops(dims, n_moved, n_moved) + self.gate_flops(dims, n_gated, n_moved)
                + self.output_flops(dims, n_moved))

    def memory_flops(self, dims: ModelDims, length: int, sinks: int, window: int) -> int:
        return self._work(dims, max(length - sinks, 0), max(length - sinks - window, 0))

    def decode_memory_flops(self, dims: ModelDims, position: int, sinks: int, window: int) -> int:
        return self._work(dims, 1 if position >= sinks else 0, 1 if position + 1 > sinks + window else 0)

    def token_data_bytes(self, dims: ModelDims, n_tokens: int, dtype_bytes: int = 2) -> int:
        """Write gates of window tokens, kept so eviction needs no recomputation."""
        per_head = self.layout.gate_bytes_per_token_per_head(dtype_bytes)
        return dims.num_heads * n_tokens * per_head * dims.num_layers

    def memory_bytes(self, dims: ModelDims, length: int, sinks: int, window: int, dtype_bytes: int = 2) -> int:
        """The fp32 state, allocated when the first token leaves the window (before that the model is exactly
        sinks + window attention)."""
        return ahn_state_bytes(dims) if length > sinks + window else 0
