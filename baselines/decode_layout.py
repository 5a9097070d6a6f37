"""Where a position's K/V lives in the fixed decode buffers of `baselines.static_decode` (a leaf module: the
method interface names a method's layout, the static decoder fills it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Slots per piece of the split slot reduction on CUDA (`static_decode.auto_splits`). Full attention's buffer is
# rounded up to whole pieces: a buffer of prompt + new tokens is rarely a multiple of 1,024, and the pieces are
# the divisors of its size, so it fell into a few long pieces and its fused step ran 6% slower than the plain one
# (docs/PERFORMANCE.md). The spare slots are never written and stay masked.
PIECE = 1024


@dataclass(frozen=True)
class DecodeLayout:
    """Where a position's K/V lives: slots [0, sinks) for sinks, then a ring of `ring` slots (or, when
    `evicts` is False, full attention: slot = position, no eviction)."""

    sinks: int
    ring: int
    evicts: bool

    @property
    def capacity(self) -> int:
        return self.sinks + self.ring

    def slot(self, pos: torch.Tensor) -> torch.Tensor:
        if not self.evicts:
            return pos.clamp(max=self.capacity - 1)
        return torch.where(pos < self.sinks, pos, self.sinks + (pos - self.sinks) % self.ring)

    @classmethod
    def full(cls, max_tokens: int) -> DecodeLayout:
        """Full attention: one slot per position, rounded up to whole pieces past one piece."""
        return cls(sinks=0, ring=max_tokens if max_tokens <= PIECE else -(-max_tokens // PIECE) * PIECE, evicts=False)

    def evicting(self, pos: torch.Tensor) -> torch.Tensor:
        """The token at `pos` pushes position pos − ring out of the window (bounded layouts only)."""
        if not self.evicts:
            return torch.zeros_like(pos, dtype=torch.bool)
        return pos >= self.sinks + self.ring
