"""Readable sequential references for the two recurrences every AHN cell reduces to, each in two orders: the
recurrent form as the papers write it, and the one-pass form (each token's reads from the state before its
write) that the static decode step compiles.

Layout: inputs ``[B, T, H, D]`` (T = time), per-token scalars ``[B, T, H]``, state ``[B, H, K, V]``
(key-major, the fla convention). Everything is computed in fp32, or fp64 when any of q/k/v is fp64,
so these functions are the ground truth the chunked forms and the GPU kernels are held to. The output
is cast to ``v.dtype``; the final state stays in the compute dtype.

The ops are pure: no q/k normalisation, no gating beyond what is passed in (the cells do that).
"""

from __future__ import annotations

import torch
from torch import Tensor


def compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """fp64 if any input is fp64, else fp32: the precision the reference recurrences run in."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def check_shapes(q: Tensor, k: Tensor, v: Tensor, *per_token: Tensor | None, initial_state: Tensor | None) -> None:
    """Fail early with a readable message instead of a broadcasting error deep in an einsum."""
    if q.ndim != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"expected q, k [B,T,H,K] and v [B,T,H,V]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    for x in per_token:
        if x is not None and tuple(x.shape) != tuple(q.shape[:3]):
            raise ValueError(f"per-token gates must be [B,T,H] = {tuple(q.shape[:3])}; got {tuple(x.shape)}")
    B, _, H, K = q.shape
    if initial_state is not None and tuple(initial_state.shape) != (B, H, K, v.shape[-1]):
        raise ValueError(f"initial_state must be [B,H,K,V] = {(B, H, K, v.shape[-1])}; got {tuple(initial_state.shape)}")


def initial(q: Tensor, v: Tensor, initial_state: Tensor | None, dtype: torch.dtype) -> Tensor:
    """The starting state in the compute dtype (zeros when none is given)."""
    B, _, H, K = q.shape
    if initial_state is None:
        return torch.zeros(B, H, K, v.shape[-1], dtype=dtype, device=q.device)
    return initial_state.to(dtype)


def setup(q: Tensor, k: Tensor, v: Tensor, *per_token: Tensor | None, scale: float | None,
          initial_state: Tensor | None) -> tuple[float, Tensor, list[Tensor | None]]:
    """What every form below starts with: the shapes checked, the scale (``K ** -0.5`` by default), the starting
    state and q, k, v and the per-token gates in the compute dtype (a gate that is None stays None)."""
    check_shapes(q, k, v, *per_token, initial_state=initial_state)
    cdt = compute_dtype(q, k, v)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return scale, initial(q, v, initial_state, cdt), [None if t is None else t.to(cdt) for t in (q, k, v, *per_token)]


def delta_rule_recurrent(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor | None = None,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Gated delta rule, one token at a time (``g=None``: plain DeltaNet).

    Per token t: ``S <- exp(g_t) S``; ``v' = beta_t (v_t - S^T k_t)``; ``S <- S + k_t v'^T``;
    ``o_t = scale * S^T q_t``. Row t of the output reads the state after write t.
    """
    scale, S, (qc, kc, vc, bc, gc) = setup(q, k, v, beta, g, scale=scale, initial_state=initial_state)
    outs = []
    for t in range(q.shape[1]):
        if gc is not None:
            S = S * gc[:, t].exp()[..., None, None]
        k_t = kc[:, t]
        pred = torch.einsum("bhkv,bhk->bhv", S, k_t)
        delta = bc[:, t, :, None] * (vc[:, t] - pred)
        S = S + k_t[..., :, None] * delta[..., None, :]
        outs.append(torch.einsum("bhkv,bhk->bhv", S, qc[:, t]) * scale)
    o = torch.stack(outs, dim=1) if outs else vc.new_zeros(vc.shape)
    return o.to(v.dtype), S


def scalar_decay_recurrent(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Linear attention with one scalar decay per head and token (simple GLA / Mamba2 SSD).

    Per token t: ``S <- exp(g_t) S + k_t v_t^T``; ``o_t = scale * S^T q_t``.
    """
    scale, S, (qc, kc, vc, gc) = setup(q, k, v, g, scale=scale, initial_state=initial_state)
    outs = []
    for t in range(q.shape[1]):
        S = S * gc[:, t].exp()[..., None, None] + kc[:, t][..., :, None] * vc[:, t][..., None, :]
        outs.append(torch.einsum("bhkv,bhk->bhv", S, qc[:, t]) * scale)
    o = torch.stack(outs, dim=1) if outs else vc.new_zeros(vc.shape)
    return o.to(v.dtype), S


def delta_rule_one_pass(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor | None = None,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`delta_rule_recurrent`'s function with each token's reads taken from the state before its write.

    With ``a = exp(g_t)``, ``u = S^T k_t`` and ``w = S^T q_t`` (one product over the state for both):
    ``v' = beta_t (v_t - a u)``, ``o_t = scale (a w + (k_t . q_t) v')`` and ``S <- a S + k_t v'^T``; expanding
    the recurrent form's ``(a S + k v'^T)^T q`` gives the same output. A token reads the state once (the product)
    and then updates it in one elementwise pass, where the recurrent form writes the decayed and the updated state
    and reads each back: at one token per row (the static decode step) inductor turns this into one batched
    product and one fused update, about a third of the state traffic.
    """
    scale, S, (qc, kc, vc, bc, gc) = setup(q, k, v, beta, g, scale=scale, initial_state=initial_state)
    outs = []
    for t in range(q.shape[1]):
        k_t, q_t = kc[:, t], qc[:, t]
        u, w = torch.einsum("bhkv,bhnk->bhnv", S, torch.stack([k_t, q_t], dim=2)).unbind(2)
        a = None if gc is None else gc[:, t].exp()[..., None]
        delta = bc[:, t, :, None] * (vc[:, t] - (u if a is None else a * u))
        kq = (k_t * q_t).sum(-1, keepdim=True)
        outs.append(((w if a is None else a * w) + kq * delta) * scale)
        S = (S if a is None else S * a[..., None]) + k_t[..., :, None] * delta[..., None, :]
    o = torch.stack(outs, dim=1) if outs else vc.new_zeros(vc.shape)
    return o.to(v.dtype), S


def scalar_decay_one_pass(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`scalar_decay_recurrent`'s function with each token's read taken from the state before its write:
    ``o_t = scale (a S^T q_t + (k_t . q_t) v_t)``, then ``S <- a S + k_t v_t^T`` (``a = exp(g_t)``), so a token
    reads the state once and updates it in one pass (see :func:`delta_rule_one_pass`)."""
    scale, S, (qc, kc, vc, gc) = setup(q, k, v, g, scale=scale, initial_state=initial_state)
    outs = []
    for t in range(q.shape[1]):
        a = gc[:, t].exp()[..., None]
        kq = (kc[:, t] * qc[:, t]).sum(-1, keepdim=True)
        outs.append((a * torch.einsum("bhkv,bhk->bhv", S, qc[:, t]) + kq * vc[:, t]) * scale)
        S = S * a[..., None] + kc[:, t][..., :, None] * vc[:, t][..., None, :]
    o = torch.stack(outs, dim=1) if outs else vc.new_zeros(vc.shape)
    return o.to(v.dtype), S
