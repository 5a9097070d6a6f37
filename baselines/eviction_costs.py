"""Cost models of the score-based eviction methods (`baselines/scattered.py`): torch-free, exact.

Every forward attends the tokens kept before it (at most the budget = sinks + window per KV head) plus itself
causally, then keeps at most the budget. Scoring adds one product of queries and raw keys (`ScoreInputs.
attention`) for the queries a method observes: SnapKV its observation window, TOVA the last query, each only when
the forward evicts; H2O every query of every forward (its scores accumulate); key norm and random none. A decode
step of SnapKV is priced as if the prompt ended just before it (it never evicts while decoding).
"""

from __future__ import annotations

from typing import Any

from baselines.costs import CostModel
from baselines.model_configs import ModelDims


class EvictionCosts(CostModel):
    """Key norm, random eviction: no scoring matmul, no state beyond the kept K/V."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)

    def observed(self, chunk: int, budget: int) -> int:
        """Queries whose attention a forward of `chunk` tokens computes again to score its raw tokens."""
        return 0

    def scores_always(self) -> bool:
        """True when the score runs on every forward, not only on those that evict."""
        return False

    def _walk(self, length: int, budget: int, chunk: int) -> tuple[int, int]:
        """(attention pairs, scoring query-key pairs) of a prefill in chunks."""
        pairs = scoring = 0
        pos = 0
        while pos < length:
            c = min(chunk, length - pos)
            n_raw = min(pos, budget) + c
            pairs += c * n_raw
            if n_raw > budget or self.scores_always():
                scoring += self.observed(c, budget) * n_raw
            pos += c
        return pairs, scoring

    def attention_pairs(self, dims: ModelDims, length: int, sinks: int, window: int, chunk: int) -> int:
        return self._walk(length, sinks + window, chunk)[0]

    def chunk_memory_flops(self, dims: ModelDims, length: int, sinks: int, window: int, chunk: int) -> int:
        return self._score_flops(dims, self._walk(length, sinks + window, chunk)[1])

    def _score_flops(self, dims: ModelDims, pairs: int) -> int:
        return dims.num_layers * 2 * dims.num_heads * dims.head_dim * pairs

    def decode_keys(self, dims: ModelDims, position: int, sinks: int, window: int) -> int:
        return min(position, sinks + window) + 1

    def decode_memory_flops(self, dims: ModelDims, position: int, sinks: int, window: int) -> int:
        n_raw = min(position, sinks + window) + 1
        if n_raw > sinks + window or self.scores_always():
            return self._score_flops(dims, self.observed(1, sinks + window) * n_raw)
        return 0


class SnapKVCosts(EvictionCosts):
    def observed(self, chunk: int, budget: int) -> int:
        return min(int(self.settings.get("window_size", 32)), chunk, budget)

    def decode_memory_flops(self, dims: ModelDims, position: int, sinks: int, window: int) -> int:
        return 0  # the prompt only is compressed

    def decode_keys(self, dims: ModelDims, position: int, sinks: int, window: int) -> int:
        return min(position, sinks + window) + 1  # as if the prompt ended at `position`


class TOVACosts(EvictionCosts):
    def observed(self, chunk: int, budget: int) -> int:
        return 1


class H2OCosts(EvictionCosts):
    """H2O also keeps one fp32 accumulated score per kept token and KV head."""

    def observed(self, chunk: int, budget: int) -> int:
        return chunk

    def scores_always(self) -> bool:
        return True

    def memory_bytes(self, dims: ModelDims, length: int, sinks: int, window: int, dtype_bytes: int = 2) -> int:
        return 4 * dims.num_kv_heads * min(length, sinks + window) * dims.num_layers

    def paper_memory_elements(self, dims: ModelDims) -> int:
        return dims.num_kv_heads * (int(self.settings.get("sinks", 0)) + int(self.settings.get("window", 0)))


class PyramidKVCosts(SnapKVCosts):
    """Per-layer budgets (`baselines.pyramidkv.layer_budgets`). The shared formulas take one kept count and one
    pair count for all layers, so this model reports every layer's attention in `chunk_memory_flops` and every
    layer's KV in `memory_bytes` (the totals are exact; `kept_tokens` and `attention_pairs` are zero)."""

    def _budgets(self, dims: ModelDims, sinks: int, window: int) -> list[int]:
        from baselines.pyramidkv import layer_budgets

        return layer_budgets(sinks + window, int(self.settings.get("window_size", 32)),
                             int(self.settings.get("beta", 20)), dims.num_layers)

    def kept_tokens(self, length: int, sinks: int, window: int) -> int:
        return 0

    def attention_pairs(self, dims: ModelDims, length: int, sinks: int, window: int, chunk: int) -> int:
        return 0

    def chunk_memory_flops(self, dims: ModelDims, length: int, sinks: int, window: int, chunk: int) -> int:
        total = 0
        for budget in self._budgets(dims, sinks, window):
            pairs, scoring = self._walk(length, budget, chunk)
            total += 4 * dims.num_heads * dims.head_dim * pairs + 2 * dims.num_heads * dims.head_dim * scoring
        return total

    def memory_bytes(self, dims: ModelDims, length: int, sinks: int, window: int, dtype_bytes: int = 2) -> int:
        per_token_layer = 2 * dims.num_kv_heads * dims.head_dim * dtype_bytes
        return sum(per_token_layer * min(length, b) for b in self._budgets(dims, sinks, window))
