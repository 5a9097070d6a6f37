"""Self-distillation losses (`docs/AHN.md` §8.3): forward KL(teacher || student) at temperature 1, or student CE.

Which positions count. ``V = {t : t >= W_tot and labels[t] != -100}``:
  * ``"official"``: ``labels[t]`` *unshifted*, as the official code does. With SFT labels (prompt = -100) this is
    off by one from "positions that predict a response token": it includes the position after the last response
    token and misses the one before the first. Kept for parity with the released checkpoints.
  * ``"shifted"``: ``labels[t + 1] != -100``, i.e. exactly the positions whose next token is supervised.
Only positions ``t >= W_tot`` have a non-empty memory; before that the student equals the teacher.

Why chunks: at 24k tokens and a 152k vocabulary, full logits are ~7 GB per stream in bf16 and twice that in
fp32. The LM head, the fp32 log-softmax and the loss are computed over ``chunk`` positions at a time inside
activation checkpointing, so only the final hidden states are kept for backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

IGNORE = -100


def loss_positions(labels: Tensor, w_tot: int, mode: str = "official") -> Tensor:
    """Bool mask [B, L] of the logit positions the loss averages over (see the module docstring)."""
    b, length = labels.shape
    t = torch.arange(length, device=labels.device)
    if mode == "official":
        valid = labels != IGNORE
    elif mode == "shifted":
        valid = torch.zeros_like(labels, dtype=torch.bool)
        valid[:, :-1] = labels[:, 1:] != IGNORE
    else:
        raise ValueError(f"kl_positions must be 'official' or 'shifted', got {mode!r}")
    return valid & (t >= w_tot)[None, :]


def ce_targets(labels: Tensor) -> Tensor:
    """Next-token targets [B, L]: ``labels[t + 1]`` at position t, IGNORE at the last position."""
    out = torch.full_like(labels, IGNORE)
    out[:, :-1] = labels[:, 1:]
    return out


def _kl_chunk(h_s: Tensor, h_t: Tensor, head: nn.Module) -> Tensor:
    """Sum over positions of KL(p_T || p_S); logits from the (possibly bf16) head, softmax in fp32."""
    logp_s = F.log_softmax(head(h_s).float(), dim=-1)
    with torch.no_grad():
        logp_t = F.log_softmax(head(h_t).float(), dim=-1)
    return F.kl_div(logp_s, logp_t, log_target=True, reduction="sum")


def _ce_chunk(h_s: Tensor, target: Tensor, head: nn.Module) -> Tensor:
    return F.cross_entropy(head(h_s).float(), target, reduction="sum")


class _FusedKL(torch.autograd.Function):
    """Sum over rows of KL(softmax(h_t W^T) || softmax(h_s W^T)); the gradient for h_s is computed in the forward.

    Per chunk of rows: both logits once (in the head's dtype), log-softmax in fp32, the KL, and right away its
    gradient ``(softmax_s - softmax_t) @ W`` (``d KL / d logits_s = p_s - p_t`` since ``p_t`` sums to one), kept
    as a [N, d] tensor for backward. Nothing of size [N, V] outlives its chunk, no logit is computed twice, and the
    head (frozen) gets no gradient.
    """

    @staticmethod
    def forward(ctx, h_s: Tensor, h_t: Tensor, weight: Tensor, bias: Tensor | None, chunk: int) -> Tensor:
        acc = torch.promote_types(weight.dtype, torch.float32)  # softmax and sums: fp32 (fp64 stays fp64)
        need_grad = ctx.needs_input_grad[0]
        grad = torch.empty(h_s.shape, dtype=acc, device=h_s.device) if need_grad else None
        total = torch.zeros((), dtype=acc, device=h_s.device)
        for start in range(0, h_s.shape[0], chunk):
            sl = slice(start, min(start + chunk, h_s.shape[0]))
            logp_s = F.log_softmax(F.linear(h_s[sl].to(weight.dtype), weight, bias).to(acc), dim=-1)
            logp_t = F.log_softmax(F.linear(h_t[sl].to(weight.dtype), weight, bias).to(acc), dim=-1)
            p_t = logp_t.exp()
            total += (p_t * (logp_t - logp_s)).sum()
            if grad is not None:
                d_logits = logp_s.exp_().sub_(p_t)  # p_s - p_t, in place of logp_s
                grad[sl] = (d_logits.to(weight.dtype) @ weight).to(acc)
        ctx.save_for_backward(grad)
        ctx.dtype = h_s.dtype
        return total

    @staticmethod
    def backward(ctx, g: Tensor):
        (grad,) = ctx.saved_tensors
        return (grad * g).to(ctx.dtype), None, None, None, None


def fused_kl(h_s: Tensor, h_t: Tensor, head: nn.Module, chunk: int = 1024) -> Tensor:
    """Summed KL(teacher || student) over the rows of ``h_s``/``h_t`` [N, d] through the linear ``head``
    (see :class:`_FusedKL`); the same value and gradient as ``_kl_chunk`` summed over chunks."""
    return _FusedKL.apply(h_s, h_t.detach(), head.weight.detach(),
                          None if head.bias is None else head.bias.detach(), chunk)


def distill_loss(
    student_hidden: Tensor,
    teacher_hidden: Tensor | None,
    head: nn.Module,
    mask: Tensor,
    *,
    loss: str = "kl",
    targets: Tensor | None = None,
    chunk: int = 1024,
    kl_impl: str = "checkpoint",
) -> tuple[Tensor, int]:
    """Mean loss over the positions in ``mask`` [B, L], and their count.

    ``student_hidden`` / ``teacher_hidden``: final (normed) hidden states [B, L, d]; ``head``: the LM head.
    With no valid position the loss is a zero that still depends on the student (so backward works and
    contributes nothing), instead of the NaN a plain mean would give. ``kl_impl="fused"`` computes the KL with
    :func:`fused_kl` (each logit once, the gradient in the forward) instead of checkpointed chunks.
    """
    idx = mask.reshape(-1).nonzero().squeeze(-1)
    n = int(idx.numel())
    if n == 0:
        return student_hidden.sum() * 0.0, 0
    h_s = student_hidden.reshape(-1, student_hidden.shape[-1]).index_select(0, idx)
    if loss == "kl":
        if teacher_hidden is None:
            raise ValueError("loss='kl' needs the teacher's hidden states")
        h_t = teacher_hidden.reshape(-1, teacher_hidden.shape[-1]).index_select(0, idx).detach()
    elif loss == "ce":
        if targets is None:
            raise ValueError("loss='ce' needs targets")
        tgt = targets.reshape(-1).index_select(0, idx)
    else:
        raise ValueError(f"loss must be 'kl' or 'ce', got {loss!r}")
    if loss == "kl" and kl_impl == "fused":
        return fused_kl(h_s, h_t, head, chunk) / n, n
    if kl_impl not in ("checkpoint", "fused"):
        raise ValueError(f"kl_impl must be 'checkpoint' or 'fused', got {kl_impl!r}")
    total = h_s.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        if loss == "kl":
            part = checkpoint(_kl_chunk, h_s[sl], h_t[sl], head, use_reentrant=False)
        else:
            part = checkpoint(_ce_chunk, h_s[sl], tgt[sl], head, use_reentrant=False)
        total = total + part
    return total / n, n
