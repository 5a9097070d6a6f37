"""The training-free methods (registered by name in `baselines/registry.py`, costed in `baselines/method_costs.py`).

* `full`: the model as it is (window unbounded; the cache grows with the prompt).
* `swa`: StreamingLLM attention sinks + a sliding window; evicted tokens are dropped.
* `ct-max` / `ct-avg`: Compressive-Transformer pooling with sinks: evicted keys/values are pooled `ratio`:1 into a
  FIFO of `slots` compressed slots that every later query also attends. Tokens of a group that is not complete
  yet stay visible raw, so there is no gap and no overlap between window, pending tokens and slots.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.cache import LayerMemory
from baselines.costs import default_ct_slots
from baselines.interface import ChunkPlan, MemoryMethod
from baselines.model_configs import ModelDims
from baselines.registry import make_method, method_names, register_method  # noqa: F401  (their former home)


class FullAttention(MemoryMethod):
    """The unmodified model: every token stays in the cache."""

    name = "full"

    def __init__(self, sinks: int = 0, window: int | None = None) -> None:
        if window is not None:
            raise ValueError("full attention has no window; use method 'swa' for sinks + sliding window")
        super().__init__(sinks=sinks, window=None)


class SinksWindow(MemoryMethod):
    """StreamingLLM: sinks + sliding window; a token that leaves the window is dropped."""

    name = "swa"

    def __init__(self, sinks: int = 128, window: int = 32640) -> None:
        if window is None:
            raise ValueError("swa needs a finite window (tokens, sinks not counted)")
        super().__init__(sinks=sinks, window=window)


class CompressivePooling(MemoryMethod):
    """Sinks + window + FIFO of pooled slots (paper's CT-Max / CT-Average baselines)."""

    POOLS = ("max", "avg")

    def __init__(
        self, sinks: int = 128, window: int = 32640, pool: str = "max", ratio: int = 4, slots: int | None = None
    ) -> None:
        if pool not in self.POOLS:
            raise ValueError(f"unknown pooling {pool!r}; valid: {', '.join(self.POOLS)}")
        if not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f"pooling ratio must be an integer >= 1, got {ratio!r}")
        if slots is not None and (not isinstance(slots, int) or slots < 1):
            raise ValueError(f"slots must be an integer >= 1 (or None for the AHN-state-sized default), got {slots!r}")
        if window is None:
            raise ValueError("compressive pooling needs a finite window")
        super().__init__(sinks=sinks, window=window)
        self.name = f"ct-{pool}"
        self.pool, self.ratio, self.slots = pool, ratio, slots

    def describe(self) -> dict:
        return {**super().describe(), "pool": self.pool, "ratio": self.ratio, "slots": self.slots}

    @staticmethod
    def default_slots(config) -> int:
        """Slots holding as many elements as an AHN state: head_dim * Nq / (2 * Nkv) (512 for Qwen2.5-3B)."""
        return max(1, default_ct_slots(ModelDims.from_hf_config(config)))

    def pool_groups(self, groups: torch.Tensor) -> torch.Tensor:
        """[B, Hkv, g, ratio, dh] keys or values of complete groups -> their [B, Hkv, g, dh] slots."""
        return groups.amax(3) if self.pool == "max" else groups.mean(3)

    def install(self, model: nn.Module) -> None:
        if self.slots is None:
            self.slots = self.default_slots(model.config)

    def complete_groups(self, t: torch.Tensor | int) -> torch.Tensor | int:
        """Number of complete pooled groups once the query at position t has evicted its token."""
        if isinstance(t, int):
            return max(0, t - self.window - self.sinks + 1) // self.ratio
        return torch.clamp(t - self.window - self.sinks + 1, min=0) // self.ratio

    def raw_visible(self, t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        pending = a >= self.sinks + self.ratio * self.complete_groups(t)
        return (a <= t) & ((a < self.sinks) | (t - a < self.window) | pending)

    def keep_from(self, next_query: int) -> int:
        return self.sinks + self.ratio * self.complete_groups(next_query - 1)

    def memory_keys(
        self, layer: LayerMemory, plan: ChunkPlan, keys: torch.Tensor, values: torch.Tensor, start: int
    ):
        if self.slots is None:
            raise RuntimeError("CompressivePooling must be attached (install sets the slot count)")
        c = plan.length
        g_lo, g_hi = self.complete_groups(start - 1), self.complete_groups(start + c - 1)
        old_ids = layer.memory.get("slot_ids")
        b, hkv, _, dh = keys.shape
        if g_hi > g_lo:  # groups completed by this chunk's queries: pool their raw tokens (contiguous)
            first_idx = plan.raw_index(self.sinks + self.ratio * g_lo)
            n = (g_hi - g_lo) * self.ratio
            gk = keys.narrow(2, first_idx, n).view(b, hkv, g_hi - g_lo, self.ratio, dh)
            gv = values.narrow(2, first_idx, n).view(b, hkv, g_hi - g_lo, self.ratio, dh)
            new_k, new_v = self.pool_groups(gk), self.pool_groups(gv)
            new_ids = torch.arange(g_lo, g_hi, device=keys.device)
        else:
            new_k = keys.new_zeros(b, hkv, 0, dh)
            new_v = values.new_zeros(b, hkv, 0, dh)
            new_ids = torch.zeros(0, dtype=torch.long, device=keys.device)
        if old_ids is not None:
            new_k = torch.cat([layer.memory["slot_keys"], new_k], 2)
            new_v = torch.cat([layer.memory["slot_values"], new_v], 2)
            new_ids = torch.cat([old_ids, new_ids])
        t = torch.arange(start, start + c, device=keys.device)[:, None]
        done = self.complete_groups(t)
        visible = (new_ids[None, :] < done) & (new_ids[None, :] >= done - self.slots)
        keep = new_ids >= g_hi - self.slots
        state = {"slot_keys": new_k[:, :, keep], "slot_values": new_v[:, :, keep], "slot_ids": new_ids[keep]}
        return new_k, new_v, visible, state

