"""FLOPs of one self-distillation step, from the project's cost model (`baselines.costs`, `ahn.costs`).

Model FLOPs, not hardware FLOPs: what the step must compute, whatever it recomputes (activation checkpointing's
second forward is not counted, so a recipe that recomputes shows a lower utilisation for the same work). Per
sequence of ``T`` tokens with sinks ``s`` + window ``W`` and ``P`` loss positions:

* teacher forward: projections + MLP of ``T`` tokens, causal attention (``T(T+1)/2`` query-key pairs), the LM
  head on the ``P`` loss positions;
* student forward: projections + MLP, sinks + window attention (query ``t`` sees ``min(t+1, s+W)`` keys), the
  AHN cell (``AHNCosts.memory_flops``), the LM head on ``P`` positions;
* student backward: the base is frozen, so its linear layers need the input gradient only (one more forward's
  worth, no weight gradient); attention's backward is counted as twice its forward (dQ, dK, dV from the saved
  softmax statistics), the AHN cell's as twice its forward, the LM head's input gradient once.
"""

from __future__ import annotations

from baselines.costs import attention_flops, lm_head_flops, mlp_flops, projection_flops
from baselines.model_configs import ModelDims


def window_pairs_exact(length: int, total: int) -> int:
    """Query-key pairs of one causal pass where query ``t`` sees ``min(t + 1, total)`` keys (total = s + W)."""
    if length <= total:
        return length * (length + 1) // 2
    return total * (total + 1) // 2 + (length - total) * total


def training_step_flops(dims: ModelDims, cell: str, seq_len: int, sequences: int, sinks: int, window: int,
                        loss_positions: int | None = None) -> dict[str, int]:
    """FLOPs of one optimiser step over ``sequences`` rows of ``seq_len`` tokens (see the module docstring).

    ``loss_positions`` per sequence defaults to ``seq_len - sinks - window`` (every position past the window)."""
    from ahn.costs import AHNCosts

    t, total = seq_len, sinks + window
    p = max(t - total, 0) if loss_positions is None else loss_positions
    linear = projection_flops(dims, t) + mlp_flops(dims, t)
    causal = attention_flops(dims, 1, t * (t + 1) // 2)
    windowed = attention_flops(dims, 1, window_pairs_exact(t, total))
    cell_fwd = AHNCosts(cell=cell).memory_flops(dims, t, sinks, window)
    head = lm_head_flops(dims, p)
    parts = {
        "teacher_forward": linear + causal + head,
        "student_forward": linear + windowed + cell_fwd + head,
        "student_backward": linear + 2 * windowed + 2 * cell_fwd + head,
    }
    parts = {k: v * sequences for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts
