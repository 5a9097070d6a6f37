"""Key norm (Devoto et al., 2024, arXiv:2406.11430): keep the keys of lowest L2 norm.

The score is the negated norm of each (post-RoPE: the rotation keeps the norm) key, computed in fp32 at least, as
kvpress's KnormPress. A per-token score, so evicting per chunk keeps the same tokens as one compression after the
whole prompt.
"""

from __future__ import annotations

import torch

from baselines.scattered import ScoredEviction, ScoreInputs


class KeyNorm(ScoredEviction):
    name = "knorm"

    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        return -torch.linalg.vector_norm(inputs.keys, dim=-1, dtype=torch.promote_types(inputs.keys.dtype,
                                                                                        torch.float32))
