"""PyramidKV (Cai et al., 2024, arXiv:2406.02069): SnapKV's scores with more tokens in lower layers.

With budget `B` (= sinks + window) and observation window `w`, layer `l` of `L` keeps its window plus the
`max_num - l * steps` best-scored earlier tokens, where `min_num = (B - w) // beta`, `max_num = 2 (B - w) -
min_num` and `steps = (max_num - min_num) // (L - 1)` (beta 20), the official KVCache-Factory schedule: on
average `B` tokens a layer. That schedule is the official one for prompts of at least `2 (B - w)` tokens; for
shorter prompts the official code falls back to uniform SnapKV, which per-forward eviction cannot (the kept
tokens of one chunk are the next chunk's prompt), so the pyramid holds at every length here.
"""

from __future__ import annotations

from torch import nn

from baselines.snapkv import SnapKV


def layer_budgets(budget: int, window_size: int, beta: int, num_layers: int) -> list[int]:
    """Tokens kept per KV head by each layer (torch-free: the cost model uses it too)."""
    w = min(window_size, budget)
    min_num = (budget - w) // beta
    max_num = 2 * (budget - w) - min_num
    steps = (max_num - min_num) // (num_layers - 1) if num_layers > 1 else 0
    return [w + max(max_num - layer * steps, 0) for layer in range(num_layers)]


class PyramidKV(SnapKV):
    name = "pyramidkv"

    def __init__(self, sinks: int = 0, window: int = 2048, window_size: int = 32, kernel_size: int = 5,
                 pooling: str = "avg", beta: int = 20) -> None:
        super().__init__(sinks=sinks, window=window, window_size=window_size, kernel_size=kernel_size,
                         pooling=pooling)
        if not isinstance(beta, int) or beta < 1:
            raise ValueError(f"beta must be an integer >= 1 (the pyramid's steepness), got {beta!r}")
        self.beta = beta
        self._budgets: list[int] | None = None

    def describe(self) -> dict:
        return {**super().describe(), "beta": self.beta}

    def install(self, model: nn.Module) -> None:
        self._budgets = layer_budgets(self.budget, self.window_size, self.beta, model.config.num_hidden_layers)

    def layer_budget(self, layer_idx: int) -> int:
        if self._budgets is None:
            raise RuntimeError("PyramidKV must be attached (install sets the layer budgets)")
        return self._budgets[layer_idx]
