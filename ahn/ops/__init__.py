"""Recurrences behind the AHN cells: readable references (``naive``, ``chunked``), fla fast path, dispatch.

Layout ``[B, T, H, D]``, per-token gates ``[B, T, H]``, states ``[B, H, K, V]`` in fp32. Importing this
package never imports fla.
"""

from ahn.ops.chunked import DEFAULT_CHUNK_SIZE, chunk_delta_rule, chunk_scalar_decay
from ahn.ops.dispatch import BACKENDS, delta_rule, resolve_backend, scalar_decay
from ahn.ops.naive import (
    delta_rule_one_pass,
    delta_rule_recurrent,
    scalar_decay_one_pass,
    scalar_decay_recurrent,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_CHUNK_SIZE",
    "chunk_delta_rule",
    "chunk_scalar_decay",
    "delta_rule",
    "delta_rule_one_pass",
    "delta_rule_recurrent",
    "resolve_backend",
    "scalar_decay",
    "scalar_decay_one_pass",
    "scalar_decay_recurrent",
]
