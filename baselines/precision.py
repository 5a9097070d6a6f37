"""RoPE frequencies stay fp32 whatever the weights' dtype.

``from_pretrained(dtype=...)`` and ``from_config(dtype=...)`` keep the rotary module's ``inv_freq`` buffers in
fp32. A whole-model ``.to(torch.bfloat16)`` casts them too; the angles ``position * inv_freq`` then drift with
position (8% error in q at position 550; on the official-parity fixtures the logits' median error grows from
0.016 to 0.15, docs/PARITY.md). The harness and the training recipe check every model they run
(:func:`check_rope_fp32`); :func:`cast_keeping_rope` is the cast to use instead of ``.to(dtype)``.
"""

from __future__ import annotations

import torch
from torch import nn

ROPE_BUFFER = "inv_freq"  # transformers' rotary buffers: `inv_freq` and `original_inv_freq`


def rope_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's RoPE frequency buffers by state-dict name."""
    return {name: buf for name, buf in model.named_buffers() if ROPE_BUFFER in name.rsplit(".", 1)[-1]}


def check_rope_fp32(model: nn.Module) -> None:
    """Raise when a RoPE frequency buffer is not fp32, naming it and the fix."""
    bad = {name: buf.dtype for name, buf in rope_buffers(model).items() if buf.dtype != torch.float32}
    if bad:
        listed = ", ".join(f"{name} ({dtype})" for name, dtype in sorted(bad.items()))
        raise ValueError(f"RoPE frequencies must stay fp32, found {listed}: load with from_pretrained(dtype=...) "
                         f"or cast with baselines.precision.cast_keeping_rope instead of model.to(dtype)")


def cast_keeping_rope(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``model.to(dtype)`` in place, with the RoPE frequency buffers kept as they were (fp32)."""
    kept = {name: buf.detach().clone() for name, buf in rope_buffers(model).items()}
    model.to(dtype)
    for name, buf in kept.items():
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, buf)
    return model
