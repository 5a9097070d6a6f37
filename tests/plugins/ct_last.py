"""A memory method added the way docs/ADDING_A_METHOD.md says: one file, one registration line.

Compressive pooling that keeps the last token of each group of two instead of their max or mean (strided
sampling of the evicted tokens). Registered when this module is imported; tests/conftest.py imports it, so the
shared method tests cover it without naming it.
"""

from __future__ import annotations

import torch

from baselines.methods import CompressivePooling
from baselines.registry import register_method


class LastTokenPooling(CompressivePooling):
    """Sinks + window + a FIFO of slots, each the last evicted token of its group."""

    POOLS = ("last",)

    def pool_groups(self, groups: torch.Tensor) -> torch.Tensor:
        return groups[:, :, :, -1]


# Choosing one token per group is no matmul, so CT's cost model (which honours the ratio) is this method's too.
register_method("ct-last", f"{__name__}:LastTokenPooling", costs="baselines.method_costs:CompressiveCosts",
                pool="last", ratio=2)
