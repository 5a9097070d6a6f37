"""Random eviction, the control: each token gets a seeded random score per layer and KV head.

The score is a hash of (seed, layer, KV head, position), so it does not depend on the chunking: a chunked prefill
keeps the same tokens as one compression after the whole prompt, and a run is reproducible.
"""

from __future__ import annotations

import torch

from baselines.scattered import ScoredEviction, ScoreInputs

_MASK = (1 << 62) - 1


def _mix(x: torch.Tensor) -> torch.Tensor:
    """An integer hash of int64 values (xorshift-multiply rounds, kept below 2**62 so nothing overflows)."""
    for mult in (0x2545F491, 0x9E3779B1, 0x85EBCA77):
        x = (x ^ (x >> 29)) & _MASK
        x = (x * mult) & _MASK
    return x


class RandomEviction(ScoredEviction):
    name = "random"

    def __init__(self, sinks: int = 0, window: int = 2048, seed: int = 0) -> None:
        super().__init__(sinks=sinks, window=window)
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed = seed

    def describe(self) -> dict:
        return {**super().describe(), "seed": self.seed}

    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        b, hkv, n = inputs.positions.shape
        head = torch.arange(hkv, device=inputs.positions.device).view(1, hkv, 1)
        key = ((self.seed * 1_000_003 + inputs.layer_idx) * 1_000_003 + head) * (1 << 32) + inputs.positions
        return (_mix(key & _MASK) >> 30).double()
