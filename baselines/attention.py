"""The attention function every memory method runs through, registered with `transformers`.

Per layer and chunk: concatenate kept and new keys, attend with the method's visibility (plus any memory keys),
hand evicted tokens to the method, add what it reads out, and keep what later queries need. The reference
attention is SDPA with an explicit boolean mask; `baselines.flex` is the GPU fast path for the same masks.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from baselines.interface import (
    ATTENTION_NAME,
    ChunkPlan,
    MemoryMethod,
    active_context,
    method_of,
)
from baselines.raw_tokens import RawTokens
from baselines.reference_attention import explicit_matmul_attention, masked_attention  # noqa: F401 (re-exported)

_REGISTERED = False


def register_attention() -> None:
    """Register `memory_attention` under ATTENTION_NAME (idempotent)."""
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION_NAME, memory_attention)
        _REGISTERED = True


def _plain_causal(plan: ChunkPlan, method: MemoryMethod) -> bool:
    """The chunk sees exactly "itself, causally": nothing kept before it, and no window edge inside it."""
    return (plan.n_old == 0 and type(method).raw_visible is MemoryMethod.raw_visible
            and (method.window is None or plan.length <= method.window))


_CUDNN_GQA_FAILED: list[str] = []  # why cuDNN refused grouped key heads in this process (then: expand them)


def causal_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float) -> torch.Tensor:
    """Square causal attention. On CUDA cuDNN's kernel first (on an H200 it ran a 131,072-token causal pass at
    577 TFLOP/s against flash's 330, `docs/PERFORMANCE.md`), with grouped key heads as they are (an H100 took them
    natively, reading each key head once: `bench/bench_gpu.py`, docs/PERFORMANCE.md); a cuDNN build that refuses them
    gets them expanded to the query heads, through SDPA's own choice of kernel."""
    gqa = query.shape[1] != keys.shape[1]
    if query.is_cuda and query.dtype in (torch.bfloat16, torch.float16):
        if not _CUDNN_GQA_FAILED:
            try:
                return torch.ops.aten._scaled_dot_product_cudnn_attention(
                    query, keys, values, None, False, 0.0, True, False, scale=scaling)[0]
            except torch.OutOfMemoryError:
                raise  # the sample's, not the kernel's: the harness records it and goes on
            except RuntimeError as exc:
                _CUDNN_GQA_FAILED.append(str(exc).splitlines()[0][:200])
                warnings.warn(f"cuDNN refused grouped key heads ({_CUDNN_GQA_FAILED[0]}); causal passes expand them "
                              "to the query heads from here on", stacklevel=2)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        rep = query.shape[1] // keys.shape[1]
        k, v = (keys.repeat_interleave(rep, 1), values.repeat_interleave(rep, 1)) if gqa else (keys, values)
        order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                 SDPBackend.MATH]
        with sdpa_kernel(order, set_priority=True):
            return F.scaled_dot_product_attention(query, k, v, is_causal=True, scale=scaling)
    return F.scaled_dot_product_attention(query, keys, values, is_causal=True, scale=scaling, enable_gqa=gqa)


def _attend(query, keys: RawTokens, values: RawTokens, plan: ChunkPlan, method: MemoryMethod, scaling) -> torch.Tensor:
    from baselines import fast_paths, flex, split_attention

    if query.is_cuda and query.shape[2] > 1 and _plain_causal(plan, method) and \
            fast_paths.current().causal_cudnn:
        return causal_attention(query, keys.all(), values.all(), scaling)
    kernel = split_attention.kernel_for(query)
    if kernel is not None:  # a full window: three dense pieces (cuDNN) instead of one masked kernel
        out = split_attention.guarded(query, keys, values, plan, method, scaling, kernel)
        if out is not None:
            return out
    if flex.usable(query):
        out = flex.sink_window_attention(query, keys.all(), values.all(), plan, method, scaling)
        if out is not None:
            return out
    return masked_attention(query, keys.all(), values.all(), plan.visible(query.device), scaling)


def memory_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """query [B,H,c,dh], key/value [B,Hkv,c,dh] of the c new tokens (the model runs without an HF cache)."""
    method = method_of(module)
    if method is None:
        raise RuntimeError("harness_memory attention called on a module with no memory method attached")
    scaling = scaling if scaling is not None else query.shape[-1] ** -0.5
    if method.is_bypassed:  # the teacher: plain causal attention over this forward's tokens
        out = F.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scaling, enable_gqa=query.shape[1] != key.shape[1]
        )
        return out.transpose(1, 2).contiguous(), None

    ctx = active_context()
    if ctx is None:  # stateless one-shot pass (training, or a plain model(...) call)
        ctx = method.stateless_context(query.shape[2])
    layer_idx = module.layer_idx
    if method.keeps_scattered:  # any per-head kept set under a budget (SnapKV, TOVA, H2O, ...)
        from baselines.scattered import scattered_attention

        return scattered_attention(method, ctx, layer_idx, query, key, value, scaling).contiguous(), None
    lm = ctx.cache.layers[layer_idx]
    plan = ctx.plan(method, query.device)
    x = method.take_layer_input(layer_idx)

    # the raw tokens (kept, then new), copied only into what stays after the chunk (baselines/raw_tokens.py)
    keys, values = RawTokens(lm.keys, key), RawTokens(lm.values, value)
    kept_keys, kept_values = keys.keep(plan.n_sink_after, plan.keep_idx), values.keep(plan.n_sink_after, plan.keep_idx)
    has_memory_keys = type(method).memory_keys is not MemoryMethod.memory_keys  # the base keeps none
    memory = method.memory_keys(lm, plan, keys.all(), values.all(), ctx.start) if has_memory_keys else None
    new_memory = dict(lm.memory)
    if memory is not None:
        mem_k, mem_v, mem_visible, mem_state = memory
        new_memory.update(mem_state)
        out = masked_attention(
            query, torch.cat([mem_k, keys.all()], 2), torch.cat([mem_v, values.all()], 2),
            torch.cat([mem_visible, plan.visible(query.device)], 1), scaling,
        )
    elif plan.length == 1:  # decode: the query sees exactly the tokens kept after this step, no mask needed
        out = masked_attention(query, kept_keys, kept_values, None, scaling)
    else:
        out = _attend(query, keys, values, plan, method, scaling)
    out = out.transpose(1, 2)  # [B, c, H, dh]

    # per-token data (AHN write gates) of the non-sink raw tokens, aligned with them
    n_new_sinks = plan.n_new_sinks
    x_nonsink = x if n_new_sinks == 0 else x[:, n_new_sinks:]
    data = {}
    for name, new in method.token_data(layer_idx, x_nonsink).items():
        data[name] = new if name not in lm.token_data else torch.cat([lm.token_data[name], new], dim=1)
    n_ev = plan.n_evicted
    evicted = {"keys": keys.narrow(plan.n_sink_after, n_ev), "values": values.narrow(plan.n_sink_after, n_ev),
               "first_position": plan.first_nonsink}
    evicted.update({name: d[:, :n_ev] for name, d in data.items()})

    added = method.absorb(layer_idx, lm, plan, evicted, query, x, ctx.start, new_memory)
    if added is not None:
        rows, first = added
        b, c, h, dh = out.shape
        rows = rows.view(b, c - first, h, dh).to(out.dtype)
        if torch.is_grad_enabled():  # out is saved for the attention's backward: a new tensor
            out = torch.cat([out[:, :first], out[:, first:] + rows], dim=1)
        else:  # out is this call's own fresh tensor: add in place, no copy of the chunk's attention
            out[:, first:] += rows

    if ctx.store:
        lm.keys, lm.values = kept_keys, kept_values
        lm.token_data = {name: d[:, n_ev:] for name, d in data.items()}
        lm.memory = new_memory
    return out.contiguous(), None
