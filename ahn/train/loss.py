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


def distill_loss(
    student_hidden: Tensor,
    teacher_hidden: Tensor | None,
    head: nn.Module,
    mask: Tensor,
    *,
    loss: str = "kl",
    targets: Tensor | None = None,
    chunk: int = 1024,
) -> tuple[Tensor, int]:
    """Mean loss over the positions in ``mask`` [B, L], and their count.

    ``student_hidden`` / ``teacher_hidden``: final (normed) hidden states [B, L, d]; ``head``: the LM head.
    With no valid position the loss is a zero that still depends on the student (so backward works and
    contributes nothing), instead of the NaN a plain mean would give.
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
    total = h_s.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        if loss == "kl":
            part = checkpoint(_kl_chunk, h_s[sl], h_t[sl], head, use_reentrant=False)
        else:
            part = checkpoint(_ce_chunk, h_s[sl], tgt[sl], head, use_reentrant=False)
        total = total + part
    return total / n, n
