"""Chunk-parallel forms of the two recurrences, exact in exact arithmetic, for long inputs on any device.

Within a chunk of length C starting from state ``S0``, with in-chunk cumulative log-decay
``b_t = sum_{i<=t} g_i`` and ``Gamma_t = exp(b_t)``, both recurrences unroll to

    S_t = Gamma_t S0 + sum_{i<=t} (Gamma_t / Gamma_i) k_i u_i^T,
    o_t = scale * (Gamma_t q_t^T S0 + sum_{i<=t} (Gamma_t / Gamma_i) (q_t . k_i) u_i),

with ``u = v`` for scalar decay. For the gated delta rule, ``u_t = beta_t (v_t - (gamma_t S_{t-1})^T k_t)``
depends on earlier ``u_i`` of the chunk through a strictly lower-triangular system

    (I + A) u = diag(beta) V - diag(beta Gamma) K S0,   A_ti = beta_t (Gamma_t / Gamma_i) k_t . k_i  (i < t),

so ``u = U - W S0`` with ``[U | W] = (I + A)^{-1} [diag(beta) V | diag(beta Gamma) K]`` (the WY / UT
transform). Everything inside a chunk is batched over all chunks at once; only the C-step carry of the
state between chunks is a Python loop. Ratios ``Gamma_t / Gamma_i`` are formed as ``exp(b_t - b_i)`` on
the causal triangle only, so strong decays underflow to 0 instead of overflowing.

Tail padding (k = v = q = 0, beta = 0, g = 0) leaves outputs and state unchanged, so any T works.
Same layout, dtype rules and semantics as :mod:`ahn.ops.naive`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ahn.ops.naive import check_shapes, compute_dtype, initial

DEFAULT_CHUNK_SIZE = 64


def _to_chunks(x: Tensor, chunk: int, dtype: torch.dtype) -> Tensor:
    """[B, T, H, ...] -> [B, H, N, C, ...], zero-padded at the end of time."""
    B, T, H = x.shape[:3]
    n = -(-T // chunk)
    x = x.to(dtype)
    pad = n * chunk - T
    if pad:
        x = F.pad(x, (0, 0) * (x.ndim - 2) + (0, pad))  # F.pad lists the last dim first; time is dim 1
    x = x.reshape(B, n, chunk, H, *x.shape[3:])
    return x.movedim(3, 1)


def _from_chunks(o: Tensor, T: int) -> Tensor:
    """[B, H, N, C, V] -> [B, T, H, V]."""
    B, H, N, C, V = o.shape
    return o.reshape(B, H, N * C, V)[:, :, :T].transpose(1, 2)


def _decay_terms(g: Tensor | None, like: Tensor, chunk: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """In-chunk cumulative log decay ``b`` [B,H,N,C] and the causal ratio matrix exp(b_t - b_i) [.., C, C]."""
    if g is None:
        b = torch.zeros(like.shape[:4], dtype=dtype, device=like.device)
    else:
        b = _to_chunks(g, chunk, dtype).cumsum(-1)
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=like.device).tril()
    ratio = (b[..., :, None] - b[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    return b, ratio


def chunk_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor | None = None,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[Tensor, Tensor]:
    """Gated delta rule (``g=None``: DeltaNet) in chunks of ``chunk_size``; equals the recurrence."""
    check_shapes(q, k, v, beta, g, initial_state=initial_state)
    cdt = compute_dtype(q, k, v)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = initial(q, v, initial_state, cdt)
    T = q.shape[1]
    if T == 0:
        return v.new_zeros(v.shape), S
    C = chunk_size
    qc, kc, vc = (_to_chunks(x, C, cdt) for x in (q, k, v))
    bc = _to_chunks(beta, C, cdt)
    b, ratio = _decay_terms(g, qc, C, cdt)

    strict = torch.ones(C, C, dtype=torch.bool, device=q.device).tril(-1)
    kk = kc @ kc.transpose(-1, -2)
    A = (bc[..., :, None] * ratio * kk).masked_fill(~strict, 0.0)
    eye = torch.eye(C, dtype=cdt, device=q.device)
    rhs = torch.cat([bc[..., None] * vc, (bc * b.exp())[..., None] * kc], dim=-1)
    X = torch.linalg.solve_triangular(A + eye, rhs, upper=False, unitriangular=True)
    U, W = X[..., : v.shape[-1]], X[..., v.shape[-1]:]
    qk = (qc @ kc.transpose(-1, -2)) * ratio
    k_to_end = kc * (b[..., -1:] - b).exp()[..., None]

    outs = []
    for n in range(qc.shape[2]):
        u = U[:, :, n] - W[:, :, n] @ S
        outs.append(scale * (b[:, :, n].exp()[..., None] * (qc[:, :, n] @ S) + qk[:, :, n] @ u))
        S = b[:, :, n, -1].exp()[..., None, None] * S + k_to_end[:, :, n].transpose(-1, -2) @ u
    o = _from_chunks(torch.stack(outs, dim=2), T)
    return o.to(v.dtype), S


def chunk_scalar_decay(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[Tensor, Tensor]:
    """Scalar-decay linear attention in chunks of ``chunk_size``; equals the recurrence."""
    check_shapes(q, k, v, g, initial_state=initial_state)
    cdt = compute_dtype(q, k, v)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = initial(q, v, initial_state, cdt)
    T = q.shape[1]
    if T == 0:
        return v.new_zeros(v.shape), S
    C = chunk_size
    qc, kc, vc = (_to_chunks(x, C, cdt) for x in (q, k, v))
    b, ratio = _decay_terms(g, qc, C, cdt)
    intra = ((qc @ kc.transpose(-1, -2)) * ratio) @ vc
    k_to_end = kc * (b[..., -1:] - b).exp()[..., None]

    outs = []
    for n in range(qc.shape[2]):
        outs.append(scale * (b[:, :, n].exp()[..., None] * (qc[:, :, n] @ S) + intra[:, :, n]))
        S = b[:, :, n, -1].exp()[..., None, None] * S + k_to_end[:, :, n].transpose(-1, -2) @ vc[:, :, n]
    o = _from_chunks(torch.stack(outs, dim=2), T)
    return o.to(v.dtype), S
