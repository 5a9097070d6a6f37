"""The three AHN cells as plain facts, without torch: the one table the modules and the cost model both read.

`ahn/cells.py` builds the modules from it (kind, checkpoint name, write gates and their bytes) and
`ahn/costs.py` counts their FLOPs and cache bytes from it, so a gate added to a cell changes both or neither.
The equations behind each entry are in `docs/AHN.md`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellLayout:
    """What one AHN cell is made of, as far as names, gates and costs go."""

    kind: str  # short name: "gdn", "dn", "mamba2" (method "ahn-<kind>")
    implementation: str  # value of the released checkpoint config key `_ahn_implementation`
    hub_name: str  # the cell's part of the released repo ids: AHN-<hub_name>-for-Qwen-2.5-Instruct-<size>
    paper_name: str  # row label of the paper's tables
    #: per-token write gates kept for window tokens, as (name, bytes per element); None = the layer input's dtype
    write_gates: tuple[tuple[str, int | None], ...]
    read_gates: int  # gates computed per reading query (the output gate g)
    paper_gates: int  # gate projections per compressed token in the paper's Table 1 (3 for GDN, 2 otherwise)
    #: dh×dh matrix–vector products per head: (per written token, per reading query)
    matvecs: tuple[int, int]

    @property
    def method(self) -> str:
        """The registered memory-method name of this cell."""
        return f"ahn-{self.kind}"

    @property
    def gate_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.write_gates)

    def gate_bytes_per_token_per_head(self, dtype_bytes: int) -> int:
        """Bytes the write gates of one token take per head, for a layer input of `dtype_bytes` per element."""
        return sum(dtype_bytes if size is None else size for _, size in self.write_gates)


#: GDN: write gates β (sigmoid, in x's dtype) and α as g = log decay (fp32), read gate g; write = Sᵀk and the
#: rank-one update. DN: β only. Mamba2: Δ (fp32) only; its decay is a scalar, so a write is the update alone.
CELLS: dict[str, CellLayout] = {
    "gdn": CellLayout("gdn", "GatedDeltaNet", "GDN", "AHN-GDN", (("beta", None), ("g", 4)), 1, 3, (2, 1)),
    "dn": CellLayout("dn", "DeltaNet", "DN", "AHN-DN", (("beta", None),), 1, 2, (2, 1)),
    "mamba2": CellLayout("mamba2", "Mamba2", "Mamba2", "AHN-Mamba2", (("dt", 4),), 1, 2, (1, 1)),
}
CELL_KINDS: tuple[str, ...] = tuple(CELLS)


def cell_layout(kind: str) -> CellLayout:
    """The layout of a cell kind; a clear error names the valid kinds."""
    if kind not in CELLS:
        raise ValueError(f"unknown AHN cell {kind!r}; valid cells: {', '.join(CELL_KINDS)}")
    return CELLS[kind]
