"""The reference attention every fast path is held to: softmax attention over a visibility mask, through SDPA or,
under `explicit_matmul_attention`, plain matmuls (every operation visible to FLOP counters). A leaf module: the
window attention, the split window attention and the score-based eviction all compute through it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
import torch.nn.functional as F

_MATH = ContextVar("harness_math_attention", default=False)


@contextlib.contextmanager
def explicit_matmul_attention() -> Iterator[None]:
    """Compute attention with plain matmuls + softmax (slow, but every op is visible to FLOP counters)."""
    token = _MATH.set(True)
    try:
        yield
    finally:
        _MATH.reset(token)


def masked_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, visible: torch.Tensor | None, scaling: float
) -> torch.Tensor:
    """Reference: softmax attention of query [B,H,c,dh] over keys [B,Hkv,n,dh] where visible [c,n] is True
    (every key when `visible` is None)."""
    gqa = query.shape[1] != keys.shape[1]
    if _MATH.get():
        rep = query.shape[1] // keys.shape[1]
        keys, values = keys.repeat_interleave(rep, 1), values.repeat_interleave(rep, 1)
        scores = torch.matmul(query, keys.transpose(-1, -2)) * scaling
        if visible is not None:
            scores = scores.masked_fill(~visible, float("-inf"))
        return torch.matmul(scores.softmax(-1), values)
    mask = None if visible is None else visible[None, None]
    if gqa and mask is not None and query.is_cuda:  # CUDA SDPA does GQA only in flash/math: expand for mem-efficient
        rep = query.shape[1] // keys.shape[1]
        keys, values, gqa = keys.repeat_interleave(rep, 1), values.repeat_interleave(rep, 1), False
    return F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, scale=scaling, enable_gqa=gqa)
