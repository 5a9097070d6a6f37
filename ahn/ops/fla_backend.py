"""Thin wrappers over flash-linear-attention (fla 0.6.0) kernels, same signatures as the references.

fla is an optional GPU extra: it is imported lazily inside the functions and never on the CPU path
(installing it on a CPU machine breaks other transformers models). All fla arguments are passed by
keyword (their positional order changed between fla releases). The cells L2-normalise q and k
themselves, so ``use_qk_l2norm_in_kernel=False``. The state layout is fla's default ``[B, H, K, V]``.

Kernel choice (checked against the fla 0.6.0 sources): ``fused_recurrent_*`` for short inputs
(T <= 64, as the official AHN code does) and ``chunk_*`` otherwise, and always ``chunk_*`` when a
gradient is needed (the fused recurrent gated-delta kernel has no backward). fla 0.6.0's
``chunk_delta_rule`` rejects fp32, so fp32 DeltaNet without gradient always takes the fused kernel, and
fp32 DeltaNet with a gradient is reported unsupported (``backend="auto"`` then uses the reference).
Likewise gradients of the gated kernels where fla 0.6.0 refuses them (Hopper + Triton < 3.7.1, see
:func:`gated_backward_error`).
"""

from __future__ import annotations

import functools
import importlib.util

import torch
from torch import Tensor

FUSED_RECURRENT_MAX_T = 64


@functools.cache
def import_error() -> str | None:
    """Why fla cannot be used here (None when it imports). Cached: import once per process."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        import fla.ops.delta_rule  # noqa: F401
        import fla.ops.gated_delta_rule  # noqa: F401
        import fla.ops.simple_gla  # noqa: F401
    except Exception as e:  # any import failure (missing, broken triton, ...) means "not available"
        return f"fla does not import ({type(e).__name__}: {e}); install the gpu extra: pip install 'ahn-harness[gpu]'"
    return None


@functools.cache
def gated_backward_error() -> str | None:
    """Why fla cannot differentiate its gated chunk kernels here (None when it can).

    fla 0.6.0 raises in the backward of every gated chunk kernel (GDN, simple GLA) on Hopper with
    Triton >= 3.4, < 3.7.1 (fla issue #640) unless tilelang is installed. Known before the forward, so
    ``backend="auto"`` can take the reference instead of failing later in ``backward()``.
    """
    try:
        from fla.utils import IS_NVIDIA_HOPPER, TRITON_ABOVE_3_4_0, TRITON_ABOVE_3_7_1
    except ImportError:  # another fla release: no such guard known
        return None
    if IS_NVIDIA_HOPPER and TRITON_ABOVE_3_4_0 and not TRITON_ABOVE_3_7_1 and importlib.util.find_spec("tilelang") is None:
        return ("fla refuses gradients of its gated chunk kernels on Hopper with Triton >= 3.4, < 3.7.1 "
                "(fla issue #640); upgrade Triton to >= 3.7.1 or install tilelang")
    return None


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def unsupported_reason(op: str, q: Tensor, k: Tensor, v: Tensor, *gates: Tensor | None,
                       initial_state: Tensor | None = None) -> str | None:
    """Why these inputs cannot go through fla (None when they can)."""
    if not (q.is_cuda and k.is_cuda and v.is_cuda):
        return "inputs are not on a CUDA device"
    if v.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        return f"fla kernels take bf16/fp16/fp32 inputs, got {v.dtype}"
    if _fp32_delta_rule(op, v, gates) and _needs_grad(q, k, v, *gates, initial_state):
        return "fla's chunk_delta_rule rejects fp32 inputs (use bf16, or the reference for fp32 training)"
    if (err := import_error()) is not None:
        return err
    gated = op == "scalar_decay" or (len(gates) > 1 and gates[1] is not None)
    if gated and _needs_grad(q, k, v, *gates, initial_state):
        return gated_backward_error()
    return None


def _fp32_delta_rule(op: str, v: Tensor, gates: tuple) -> bool:
    """fp32 DeltaNet (delta rule without decay: gates = (beta, None)), which fla's chunk kernel rejects."""
    return op == "delta_rule" and v.dtype == torch.float32 and (len(gates) < 2 or gates[1] is None)


def _use_fused(q: Tensor, k: Tensor, v: Tensor, *gates: Tensor | None, initial_state: Tensor | None,
               op: str) -> bool:
    if _needs_grad(q, k, v, *gates, initial_state):
        return False
    return q.shape[1] <= FUSED_RECURRENT_MAX_T or _fp32_delta_rule(op, v, gates)


def _prepare(q: Tensor, k: Tensor, v: Tensor, initial_state: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """fla wants q, k, v of one dtype and an fp32 state; the output keeps v's dtype."""
    h0 = None if initial_state is None else initial_state.float().contiguous()
    return q.to(v.dtype).contiguous(), k.to(v.dtype).contiguous(), h0


def delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor | None = None,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Gated delta rule (``g=None``: DeltaNet) through fla; returns (o in v.dtype, fp32 state)."""
    reason = unsupported_reason("delta_rule", q, k, v, beta, g, initial_state=initial_state)
    if reason:
        raise RuntimeError(f"fla backend unavailable for delta_rule: {reason}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    fused = _use_fused(q, k, v, beta, g, initial_state=initial_state, op="delta_rule")
    qq, kk, h0 = _prepare(q, k, v, initial_state)
    common = dict(q=qq, k=kk, v=v.contiguous(), beta=beta.to(v.dtype).contiguous(), scale=scale,
                  initial_state=h0, output_final_state=True, use_qk_l2norm_in_kernel=False)
    if g is not None:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule

        fn = fused_recurrent_gated_delta_rule if fused else chunk_gated_delta_rule
        o, state = fn(g=g.float().contiguous(), **common)
    else:
        from fla.ops.delta_rule import chunk_delta_rule, fused_recurrent_delta_rule

        fn = fused_recurrent_delta_rule if fused else chunk_delta_rule
        o, state = fn(**common)
    return o.to(v.dtype), state


def scalar_decay(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Scalar-decay linear attention (simple GLA) through fla; returns (o in v.dtype, fp32 state)."""
    reason = unsupported_reason("scalar_decay", q, k, v, g, initial_state=initial_state)
    if reason:
        raise RuntimeError(f"fla backend unavailable for scalar_decay: {reason}")
    from fla.ops.simple_gla import chunk_simple_gla, fused_recurrent_simple_gla

    scale = q.shape[-1] ** -0.5 if scale is None else scale
    fused = _use_fused(q, k, v, g, initial_state=initial_state, op="scalar_decay")
    qq, kk, h0 = _prepare(q, k, v, initial_state)
    fn = fused_recurrent_simple_gla if fused else chunk_simple_gla
    o, state = fn(q=qq, k=kk, v=v.contiguous(), g=g.float().contiguous(), scale=scale,
              initial_state=h0, output_final_state=True)
    return o.to(v.dtype), state
