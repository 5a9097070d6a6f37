"""H2O (Zhang et al., 2023, arXiv:2306.14048): heavy hitters by accumulated attention, plus the recent tokens.

Each kept token accumulates the attention every query gives it (summed over queries, averaged over the query
heads of its KV head); after each forward over the budget, the latest `recent` share of the budget stays (0.5:
the paper's equal heavy and recent budgets) and the rest goes to the highest accumulated scores. The accumulated
scores are state (fp32, one per kept token and KV head) and count as cache bytes. `average=True` divides each
score by the queries that saw the token (kvpress's ObservedAttentionPress, with `recent=0`).
"""

from __future__ import annotations

import torch

from baselines.scattered import ScoredEviction, ScoreInputs

ACCUMULATED = "accumulated"


class H2O(ScoredEviction):
    name = "h2o"
    aligned_memory = (ACCUMULATED,)

    def __init__(self, sinks: int = 0, window: int = 2048, recent: float = 0.5, average: bool = False) -> None:
        super().__init__(sinks=sinks, window=window)
        if not isinstance(recent, (int, float)) or not 0 <= recent <= 1:
            raise ValueError(f"recent must be a share of the budget in [0, 1], got {recent!r}")
        self.recent, self.average = float(recent), bool(average)

    def describe(self) -> dict:
        return {**super().describe(), "recent": self.recent, "average": self.average}

    @property
    def n_recent(self) -> int:
        return int(self.budget * self.recent)

    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        b, hkv, n, _ = inputs.keys.shape
        received = inputs.received().view(b, hkv, inputs.groups, n).mean(2)  # [B, Hkv, n]
        old = inputs.memory.get(ACCUMULATED)
        if old is not None:
            received[..., : inputs.n_old] += old
        inputs.new_memory[ACCUMULATED] = received
        scores = received / (inputs.end - inputs.positions) if self.average else received.clone()
        if self.n_recent:
            scores[..., n - self.n_recent:] = float("inf")
        return scores
