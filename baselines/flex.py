"""GPU fast path for sink + window attention: FlexAttention with a block-sparse mask.

Kept keys are laid out as [sinks ; window ; chunk], and window and chunk are contiguous in position, so a key's
absolute position is `kv` for the `n_sink` sinks and `kv − n_sink + first` after them. The mask is the same rule
as `MemoryMethod.raw_visible` (causal, and a sink or within `window` of the query), written with scalar tensors
so one compiled kernel serves every chunk. Blocks no query sees are skipped: a chunk costs
O(c·(sinks + window + c)) whatever the prompt length. Tests on the GPU hold it to the masked-SDPA reference.
"""

from __future__ import annotations

import functools

import torch

from baselines.interface import ChunkPlan, MemoryMethod

BIG = 1 << 40  # "no window" for full attention


def usable(query: torch.Tensor) -> bool:
    """On by default on CUDA; AHN_HARNESS_FLEX=0 switches it off, =force also uses it on the CPU (tests)."""
    from baselines import fast_paths

    setting = fast_paths.current().flex
    if setting == "0" or (not query.is_cuda and setting != "force"):
        return False
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _compiled():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)


def _block_mask(plan: ChunkPlan, method: MemoryMethod, q_len: int, kv_len: int, device):
    from torch.nn.attention.flex_attention import create_block_mask

    cached = plan.extra.get("flex_block_mask")
    if cached is not None:
        return cached
    windowed = method.window is not None
    scalars = torch.tensor([plan.n_sink_old, plan.first_old, plan.start, method.sinks if windowed else 0,
                            method.window if windowed else BIG], device=device)

    def mask_mod(b, h, q_idx, kv_idx):
        n_s, first_pos, q0, sinks, window = scalars[0], scalars[1], scalars[2], scalars[3], scalars[4]
        pos = torch.where(kv_idx < n_s, kv_idx, kv_idx - n_s + first_pos)
        t = q_idx + q0
        return (pos <= t) & ((pos < sinks) | (t - pos < window))

    block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=q_len, KV_LEN=kv_len, device=device,
                                   _compile=True)
    plan.extra["flex_block_mask"] = block_mask
    return block_mask


def sink_window_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, plan: ChunkPlan, method: MemoryMethod,
    scaling: float,
) -> torch.Tensor | None:
    """Same result as masked_attention(query, keys, values, plan.visible, scaling); None if not applicable."""
    q_len, kv_len = query.shape[2], keys.shape[2]
    if q_len < 128 or type(method).raw_visible is not MemoryMethod.raw_visible:
        return None  # tiny chunks: the dense mask is small; other visibility rules: the reference path
    block_mask = _block_mask(plan, method, q_len, kv_len, query.device)
    return _compiled()(query, keys, values, block_mask=block_mask, scale=scaling,
                       enable_gqa=query.shape[1] != keys.shape[1])
