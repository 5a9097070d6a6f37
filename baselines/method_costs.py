"""Cost models of the training-free methods (full attention, sinks + window, Compressive-Transformer pooling).

Torch-free, like everything the cost model reads; the shared formulas and the hooks are in `baselines/costs.py`.
"""

from __future__ import annotations

from typing import Any

from baselines.costs import CostModel, default_ct_slots, kv_cache_bytes
from baselines.model_configs import ModelDims


class FullCosts(CostModel):
    """The unmodified model: every token stays in the cache and every query sees all before it."""

    bounded = False


class WindowCosts(CostModel):
    """Sinks + sliding window; an evicted token is dropped, so the base class's terms are the whole story."""


class CompressiveCosts(CostModel):
    """CT pooling: evicted tokens pooled `ratio`:1 into a FIFO of `slots` compressed key/value slots that every
    later query attends; the evicted tokens of a group that is not complete yet stay raw until it is."""

    def __init__(self, *, ratio: int = 4, slots: int | None = None, **settings: Any) -> None:
        super().__init__(ratio=ratio, slots=slots, **settings)
        if not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f"pooling ratio must be an integer >= 1, got {ratio!r}")
        if slots is not None and (not isinstance(slots, int) or slots < 1):
            raise ValueError(f"slots must be an integer >= 1 (or None for the AHN-state-sized default), got {slots!r}")
        self.ratio, self._slots = ratio, slots

    def slots(self, dims: ModelDims) -> int:
        return default_ct_slots(dims) if self._slots is None else self._slots

    def complete_groups(self, t: int, sinks: int, window: int) -> int:
        """Pooled groups complete once the query at position t has evicted its token."""
        return max(0, t - window - sinks + 1) // self.ratio

    def slot_counts(self, length: int, sinks: int, window: int, slots: int) -> tuple[int, int]:
        """(filled slots, raw tokens waiting for a full group) after `length` tokens."""
        evicted = max(length - sinks - window, 0)
        return min(slots, evicted // self.ratio), evicted % self.ratio

    def pairs(self, length: int, sinks: int, window: int, chunk: int, slots: int) -> int:
        """Query-key pairs as the implementation attends them: per chunk, the raw tokens kept before it
        (sinks, window and the evicted tokens of an incomplete group), the FIFO slots kept before it plus the
        slots its own queries complete, and the chunk itself."""
        pairs, pos = 0, 0
        while pos < length:
            c = min(chunk, length - pos)
            done_before = self.complete_groups(pos - 1, sinks, window)
            raw_before = min(pos, sinks) + max(0, pos - (sinks + self.ratio * done_before))
            slot_keys = min(slots, done_before) + self.complete_groups(pos + c - 1, sinks, window) - done_before
            pairs += c * (raw_before + c + slot_keys)
            pos += c
        return pairs

    # The paper's convention counts the full allocation M of slots (`docs/COSTS.md`).
    def paper_memory_flops(self, dims: ModelDims, evicted: int, window_total: int) -> int:
        return 2 * evicted * 2 * self.slots(dims) * dims.head_dim * dims.num_heads

    def paper_memory_elements(self, dims: ModelDims) -> int:
        return 2 * self.slots(dims) * dims.head_dim * dims.num_kv_heads

    def attention_pairs(self, dims: ModelDims, length: int, sinks: int, window: int, chunk: int) -> int:
        return self.pairs(length, sinks, window, chunk, self.slots(dims))

    def decode_keys(self, dims: ModelDims, position: int, sinks: int, window: int) -> int:
        """The pairs of a one-token chunk at this position."""
        slots = self.slots(dims)
        return self.pairs(position + 1, sinks, window, 1, slots) - self.pairs(position, sinks, window, 1, slots)

    def memory_bytes(self, dims: ModelDims, length: int, sinks: int, window: int, dtype_bytes: int = 2) -> int:
        """Each slot is one pooled key and value per KV head; pending raw tokens are plain KV."""
        filled, pending = self.slot_counts(length, sinks, window, self.slots(dims))
        return kv_cache_bytes(dims, filled + pending, dtype_bytes)
