"""SnapKV (Li et al., 2024, arXiv:2404.14469): the last prompt tokens' attention picks what each KV head keeps.

The observation window is the prompt's last `window_size` tokens (32: the official `init_snapkv` default; kvpress
uses 64). Their attention over the earlier tokens, averaged over the window's queries, is smoothed along the
sequence by a 1-D pooling (`pooling` "avg" with `kernel_size` 5, zero padding counted: the official defaults and
kvpress's; "max" is the official alternative), averaged over the query heads of each KV head (kvpress's GQA rule),
and the top tokens stay beside the whole window, which is always kept. The prompt is compressed once it exceeds
the budget and never during decoding, as in the paper; in a chunked prefill each chunk's last `window_size`
tokens are its observation window, so memory stays within budget + chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.scattered import ScoredEviction, ScoreInputs


class SnapKV(ScoredEviction):
    name = "snapkv"
    evicts_in_decode = False
    POOLINGS = ("avg", "max")

    def __init__(self, sinks: int = 0, window: int = 2048, window_size: int = 32, kernel_size: int = 5,
                 pooling: str = "avg") -> None:
        super().__init__(sinks=sinks, window=window)
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_size must be an integer >= 1 (observation window), got {window_size!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")
        if pooling not in self.POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(self.POOLINGS)}")
        self.window_size, self.kernel_size, self.pooling = window_size, kernel_size, pooling

    def describe(self) -> dict:
        return {**super().describe(), "window_size": self.window_size, "kernel_size": self.kernel_size,
                "pooling": self.pooling}

    def observed(self, chunk: int, budget: int | None = None) -> int:
        """Queries of the observation window in a forward of `chunk` tokens (it always fits the budget)."""
        return min(self.window_size, chunk, self.budget if budget is None else budget)

    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        b, hkv, n, _ = inputs.keys.shape
        w = self.observed(inputs.query.shape[2], self.layer_budget(inputs.layer_idx))
        votes = inputs.attention(last=w)[..., : n - w].mean(-2)  # [B, H, n - w]
        pool = F.avg_pool1d if self.pooling == "avg" else F.max_pool1d
        votes = pool(votes, kernel_size=self.kernel_size, padding=self.kernel_size // 2, stride=1)
        votes = votes.view(b, hkv, inputs.groups, n - w).mean(2)
        return F.pad(votes, (0, w), value=float("inf"))  # the observation window always stays
