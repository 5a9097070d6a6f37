"""One entry point per recurrence that picks the implementation, so cells never care where they run.

Backends:
  * ``"auto"``: fla when the inputs are on CUDA, fla imports and supports them; otherwise the reference.
  * ``"reference"``: the sequential recurrence for ``T <= chunk_size``, the chunked form beyond.
  * ``"recurrent"`` / ``"chunked"``: force one reference form (tests, benchmarks).
  * ``"one-pass"``: the recurrent function, each token's reads from the state before its write
    (:func:`ahn.ops.naive.delta_rule_one_pass`): what the compiled static decode step runs.
  * ``"fla"``: the fla kernels; a clear error when they are unavailable for these inputs.

The CPU path never imports fla: availability is only probed for CUDA inputs.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from ahn.ops import chunked, fla_backend, naive

Backend = Literal["auto", "reference", "recurrent", "chunked", "fla", "one-pass"]
BACKENDS: tuple[str, ...] = ("auto", "reference", "recurrent", "chunked", "fla", "one-pass")


def resolve_backend(backend: str, op: str, q: Tensor, k: Tensor, v: Tensor, *gates: Tensor | None,
                    initial_state: Tensor | None = None, chunk_size: int = chunked.DEFAULT_CHUNK_SIZE) -> str:
    """The concrete implementation ("recurrent", "chunked", "one-pass" or "fla") a call will use."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend in ("auto", "fla"):
        reason = fla_backend.unsupported_reason(op, q, k, v, *gates, initial_state=initial_state) if q.is_cuda \
            else "inputs are not on a CUDA device"
        if reason is None:
            return "fla"
        if backend == "fla":
            raise RuntimeError(f"backend='fla' requested for {op} but it cannot run: {reason}. "
                               "Use backend='auto' or 'reference' to run the PyTorch reference.")
    if backend in ("recurrent", "chunked", "one-pass"):
        return backend
    return "recurrent" if q.shape[1] <= chunk_size else "chunked"


def delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor | None = None,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    backend: Backend = "auto",
    chunk_size: int = chunked.DEFAULT_CHUNK_SIZE,
) -> tuple[Tensor, Tensor]:
    """Gated delta rule (``g=None``: DeltaNet); see :func:`ahn.ops.naive.delta_rule_recurrent`."""
    impl = resolve_backend(backend, "delta_rule", q, k, v, beta, g, initial_state=initial_state,
                           chunk_size=chunk_size)
    if q.shape[1] == 0:  # nothing to write: no kernel launch, state unchanged
        return naive.delta_rule_recurrent(q, k, v, beta, g, scale=scale, initial_state=initial_state)
    if impl == "fla":
        return fla_backend.delta_rule(q, k, v, beta, g, scale=scale, initial_state=initial_state)
    if impl == "chunked":
        return chunked.chunk_delta_rule(q, k, v, beta, g, scale=scale, initial_state=initial_state,
                                        chunk_size=chunk_size)
    if impl == "one-pass":
        return naive.delta_rule_one_pass(q, k, v, beta, g, scale=scale, initial_state=initial_state)
    return naive.delta_rule_recurrent(q, k, v, beta, g, scale=scale, initial_state=initial_state)


def scalar_decay(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    *,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    backend: Backend = "auto",
    chunk_size: int = chunked.DEFAULT_CHUNK_SIZE,
) -> tuple[Tensor, Tensor]:
    """Scalar-decay linear attention; see :func:`ahn.ops.naive.scalar_decay_recurrent`."""
    impl = resolve_backend(backend, "scalar_decay", q, k, v, g, initial_state=initial_state,
                           chunk_size=chunk_size)
    if q.shape[1] == 0:
        return naive.scalar_decay_recurrent(q, k, v, g, scale=scale, initial_state=initial_state)
    if impl == "fla":
        return fla_backend.scalar_decay(q, k, v, g, scale=scale, initial_state=initial_state)
    if impl == "chunked":
        return chunked.chunk_scalar_decay(q, k, v, g, scale=scale, initial_state=initial_state,
                                          chunk_size=chunk_size)
    if impl == "one-pass":
        return naive.scalar_decay_one_pass(q, k, v, g, scale=scale, initial_state=initial_state)
    return naive.scalar_decay_recurrent(q, k, v, g, scale=scale, initial_state=initial_state)
