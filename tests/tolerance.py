"""Tolerances from the arithmetic, not from what one CPU happened to produce.

Two evaluations of the same mathematics in one precision (chunked vs recurrent, streamed vs one-shot, SDPA vs
an explicit mask) differ by rounding only. To first order, each rounded operation along the longest chain of
dependent operations adds at most one unit roundoff of the magnitude it works on, so the difference is bounded
by ``n_ops * eps(dtype) * scale``, where ``scale`` is the largest magnitude involved. A real defect (a state
carried wrongly, a token masked wrongly) differs at O(scale), orders of magnitude above the bound, so these
bounds keep the tests sharp on every CPU (other SIMD widths reorder reductions; the bound covers any order).
"""

from __future__ import annotations

import torch


def rounding_bound(dtype: torch.dtype, n_ops: int, scale: float) -> float:
    """``n_ops * eps(dtype) * scale``: the first-order rounding bound described in the module docstring."""
    return n_ops * torch.finfo(dtype).eps * float(scale)


def assert_close_rounding(got: torch.Tensor, want: torch.Tensor, n_ops: int, dtype: torch.dtype | None = None,
                          msg: str = "") -> None:
    """``got`` equals ``want`` within the rounding bound of ``n_ops`` operations at ``want``'s largest magnitude."""
    dtype = dtype or want.dtype
    scale = max(want.detach().abs().max().item() if want.numel() else 0.0, torch.finfo(dtype).tiny)
    bound = rounding_bound(dtype, n_ops, scale)
    err = (got.detach().to(want.dtype) - want.detach()).abs().max().item() if want.numel() else 0.0
    assert got.shape == want.shape, (got.shape, want.shape, msg)
    assert err <= bound, f"{msg}: max |diff| {err:.3g} > bound {bound:.3g} ({n_ops} ops x eps x {scale:.3g})"


def model_chain_ops(config, seq_len: int) -> int:
    """The longest chain of rounded operations of one causal-LM forward: per layer the reductions of attention
    (q.k over head_dim, softmax and p.v over the sequence, the output map over the hidden size) and of the MLP
    (up over hidden, down over intermediate), then the LM head over the hidden size."""
    d, inter = config.hidden_size, config.intermediate_size
    head = getattr(config, "head_dim", None) or d // config.num_attention_heads
    per_layer = head + 2 * seq_len + d + d + inter
    return config.num_hidden_layers * per_layer + d
