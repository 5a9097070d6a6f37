"""GPU fast path for sink + window attention: FlexAttention with a block-sparse mask.

The mask is the method's own `raw_visible` rule over absolute positions, so the fast path cannot drift from the
reference (`baselines.attention.masked_attention`); tests on the GPU hold the two together. Blocks that no query
sees are skipped, so a chunk costs O(c·(sinks + window + c)) whatever the prompt length.
"""

from __future__ import annotations

import functools
import os

import torch

from baselines.interface import ChunkPlan, MemoryMethod


def usable(query: torch.Tensor) -> bool:
    """Flex runs on CUDA only, and can be switched off with AHN_HARNESS_FLEX=0 (for A/B checks)."""
    if not query.is_cuda or os.environ.get("AHN_HARNESS_FLEX", "1") == "0":
        return False
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _compiled():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=True)


def _block_mask(plan: ChunkPlan, method: MemoryMethod, q_len: int, kv_len: int, start: int, device):
    from torch.nn.attention.flex_attention import create_block_mask

    key = ("flex_block_mask", q_len, kv_len)
    if plan.extra.get("flex_key") == key:
        return plan.extra["flex_block_mask"]
    positions = plan.positions.to(device)

    def mask_mod(b, h, q_idx, kv_idx):
        return method.raw_visible(q_idx + start, positions[kv_idx])

    block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=q_len, KV_LEN=kv_len, device=device)
    plan.extra["flex_key"], plan.extra["flex_block_mask"] = key, block_mask
    return block_mask


def sink_window_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, plan: ChunkPlan, method: MemoryMethod,
    scaling: float,
) -> torch.Tensor:
    """Same result as masked_attention(query, keys, values, plan.visible, scaling), without the dense mask."""
    q_len, kv_len = query.shape[2], keys.shape[2]
    if q_len == 1:  # decode: every kept key is visible except those the plan hides; SDPA is fastest
        import torch.nn.functional as F

        return F.scaled_dot_product_attention(
            query, keys, values, attn_mask=plan.visible[None, None], scale=scaling,
            enable_gqa=query.shape[1] != keys.shape[1],
        )
    start = int(plan.positions[plan.n_old].item()) if plan.positions.numel() > plan.n_old else 0
    block_mask = _block_mask(plan, method, q_len, kv_len, start, query.device)
    return _compiled()(query, keys, values, block_mask=block_mask, scale=scaling,
                       enable_gqa=query.shape[1] != keys.shape[1])
