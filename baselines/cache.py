"""Per-request memory: the kept tokens' keys/values and whatever the method remembers of evicted ones.

Everything a method keeps between forwards lives here, never on the model's modules, so two requests never
share state. All layers keep the same token set, so the absolute positions of the kept tokens are stored once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: integer bookkeeping kept beside the tensors that hold the memory itself; like the kept positions, it is not
#: counted as cache bytes (CT's slot ids, the scattered methods' kept positions: O(tokens) int64 and the analytic models count stored elements only)
BOOKKEEPING = frozenset({"slot_ids", "positions"})


@dataclass
class LayerMemory:
    """One layer's kept tokens (sinks first, then the window, in position order) and method memory."""

    keys: torch.Tensor | None = None  # [B, Hkv, n_kept, dh], post-RoPE
    values: torch.Tensor | None = None  # [B, Hkv, n_kept, dh]
    # per-token data of the kept NON-sink tokens, aligned with them (AHN: write gates), each [B, n, ...]
    token_data: dict[str, torch.Tensor] = field(default_factory=dict)
    # method memory (AHN: "state"; CT: "slot_keys", "slot_values", "slot_ids")
    memory: dict[str, torch.Tensor] = field(default_factory=dict)

    def tensors(self) -> list[torch.Tensor]:
        out = [t for t in (self.keys, self.values) if t is not None]
        return out + list(self.token_data.values()) + [t for k, t in self.memory.items() if k not in BOOKKEEPING]


class MemoryCache:
    """What one request keeps: `seen` tokens so far and one `LayerMemory` per layer.

    The kept raw tokens are always the sinks seen so far followed by one contiguous run of positions
    `first .. seen-1` (window, plus CT's pending tokens), so two integers describe them for every layer.
    """

    def __init__(self, num_layers: int) -> None:
        self.seen = 0
        self.sinks_kept = 0  # positions 0 .. sinks_kept-1
        self.first = 0  # first position of the contiguous run of non-sink kept tokens (== seen when none)
        self.layers = [LayerMemory() for _ in range(num_layers)]

    @property
    def num_kept(self) -> int:
        return self.sinks_kept + self.seen - self.first

    @property
    def positions(self) -> torch.Tensor:
        """Absolute positions of the kept tokens (for reports and tests; the engine never needs them)."""
        return torch.cat([torch.arange(self.sinks_kept), torch.arange(self.first, self.seen)])

    def nbytes(self) -> int:
        """Bytes held by the live cache tensors: KV, per-token data and method memory (not the bookkeeping)."""
        return sum(t.numel() * t.element_size() for layer in self.layers for t in layer.tensors())

    def nbytes_by_kind(self) -> dict[str, int]:
        """Bytes split into kv / token_data / memory, for cost reports."""
        kinds = {"kv": 0, "token_data": 0, "memory": 0}
        for layer in self.layers:
            for t in (layer.keys, layer.values):
                if t is not None:
                    kinds["kv"] += t.numel() * t.element_size()
            kinds["token_data"] += sum(t.numel() * t.element_size() for t in layer.token_data.values())
            kinds["memory"] += sum(t.numel() * t.element_size() for k, t in layer.memory.items()
                                   if k not in BOOKKEEPING)
        return kinds
