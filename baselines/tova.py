"""TOVA (Oren et al., 2024, arXiv:2401.06104): drop the tokens the current query attends least.

After each forward that leaves more than the budget, every layer keeps the tokens with the highest attention of
the forward's last query, averaged over all query heads; all KV heads of a layer keep the same tokens. As the
official `TOVACache.reduce`, the last token competes like any other (kvpress always keeps it), and a forward of
several tokens (a prefill chunk, or the whole prompt at once) is reduced once with its last query.
"""

from __future__ import annotations

import torch

from baselines.scattered import ScoredEviction, ScoreInputs


class TOVA(ScoredEviction):
    name = "tova"

    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        heads_mean = inputs.attention(last=1)[:, :, 0].mean(1, keepdim=True)  # [B, 1, n]
        return heads_mean.expand(-1, inputs.keys.shape[1], -1)
