"""Sink + window attention of a prefill chunk as three dense pieces merged by log-sum-exp (a GPU fast path).

FlexAttention runs the sink + window mask at ~426 TFLOP/s on an H200, cuDNN's dense and causal kernels at
~577 (`docs/PERFORMANCE.md`). Once the window is full, a chunk's mask is three blocks those kernels take
without a mask. Raw keys are [sinks (s) ; the kept run of W positions start − W … start − 1 ; the chunk (c)]
(`MemoryMethod.keep_from`: the first of them leaves the window with the chunk's first query, which no longer
sees it). Query i of the chunk is at position start + i and sees a kept position p iff p > start + i − W:

* **A**, the sinks and the kept positions p ≥ start + c − W: every query sees them (no mask);
* **B**, the kept positions p = start − W + 1 + j, j = 0 … c − 2: query i sees j ≥ i. Reversing queries and
  keys turns that into a plain causal square: query c − 2 − i, key c − 2 − j, j' ≤ i'. The last query
  (i = c − 1) sees nothing of B, and no query sees p = start − W;
* **C**, the chunk itself: causal.

Each piece returns its output and the log-sum-exp of its scores; the rows are merged as
out = Σ_p exp(lse_p − lse) · out_p with lse = logsumexp_p(lse_p), i.e. one softmax over the union of the keys.
Applicable when the window is full before the chunk (every sink kept, W kept positions) and c ≤ W; other
chunks return None and take FlexAttention. `piece` below is the reference (plain matmuls, any device); on CUDA
the pieces run through cuDNN or flash (GQA native). For cuDNN the causal pieces B and C expand K/V to the query
heads; the unmasked piece A, most of the keys, stacks each group's query heads along the sequence instead.
Tests hold the merge to the masked reference on the CPU (`tests/baselines/test_split_attention.py`) and the
kernels to it on the GPU.
"""

from __future__ import annotations

import os
import warnings

import torch

from baselines.interface import ChunkPlan, MemoryMethod

ENV = "AHN_HARNESS_WINDOW_ATTENTION"
# setting → the kernel of the pieces ("split": cuDNN on CUDA; "flex": this path off, FlexAttention as before;
# "split-reference": the reference pieces on any device, for tests)
SETTINGS = {"split": "cudnn", "split-flash": "flash", "split-reference": "reference", "flex": None}
DEFAULT = "split"  # measured faster than "flex" in two device calls (docs/PERFORMANCE.md, sixth session)
KERNELS = ("cudnn", "flash", "reference")


def setting() -> str:
    """AHN_HARNESS_WINDOW_ATTENTION (unset: `DEFAULT`); a ValueError naming the valid settings for any other."""
    value = os.environ.get(ENV, DEFAULT)
    if value not in SETTINGS:
        raise ValueError(f"{ENV}={value!r}; valid: {', '.join(SETTINGS)}")
    return value


def kernel_for(query: torch.Tensor) -> str | None:
    """The pieces' kernel for this query under AHN_HARNESS_WINDOW_ATTENTION, or None (path off): "split" is cuDNN
    for bf16/fp16 on CUDA and off elsewhere (the CPU keeps the masked reference); unset is `DEFAULT`."""
    kernel = SETTINGS[setting()]
    if kernel == "reference":
        return kernel
    if kernel is None or not query.is_cuda or query.dtype not in (torch.bfloat16, torch.float16):
        return None
    return kernel


def applicable(plan: ChunkPlan, method: MemoryMethod) -> bool:
    """The chunk's mask is the three blocks of the module docstring."""
    window = method.window
    return (window is not None and type(method).raw_visible is MemoryMethod.raw_visible
            and plan.n_sink_old == method.sinks and plan.start >= method.sinks
            and plan.first_old == plan.start - window and plan.n_old == method.sinks + window
            and 2 <= plan.length <= window)


def piece(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float, causal: bool,
          kernel: str = "reference") -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of query [B,H,q,dh] over keys/values [B,Hkv,k,dh] (causal: top-left, key j ≤ query i)
    → (out [B,H,q,dh] in the query's dtype, lse [B,H,q] in fp32, fp64 for fp64 inputs).

    An unmasked piece with grouped key heads runs on the query heads of each group stacked along the sequence
    (:func:`grouped_queries`): the same scores, with each key head read once instead of expanded to every query
    head it serves (a copy of 8× the piece's keys and values per layer and chunk on Qwen2.5-3B)."""
    b, h, q, dh = query.shape
    rep = h // keys.shape[1]
    if not causal and rep > 1:
        out, lse = _piece(grouped_queries(query, keys.shape[1]), keys, values, scaling, causal, kernel)
        return out.reshape(b, h, q, dh), lse.reshape(b, h, q)
    return _piece(query, keys, values, scaling, causal, kernel)


def grouped_queries(query: torch.Tensor, n_kv: int) -> torch.Tensor:
    """[B,H,q,dh] → [B,Hkv,rep·q,dh]: query head h shares key head h // rep (as ``repeat_interleave(rep, 1)`` of
    the keys has it), so the rep heads of group j become one sequence of rep·q queries on key head j. Only for
    unmasked attention: a causal mask would see the stacked positions as later queries."""
    b, h, q, dh = query.shape
    return query.reshape(b, n_kv, (h // n_kv) * q, dh)


def _piece(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float, causal: bool,
           kernel: str) -> tuple[torch.Tensor, torch.Tensor]:
    rep = query.shape[1] // keys.shape[1]
    if kernel == "reference":
        k, v = keys.repeat_interleave(rep, 1), values.repeat_interleave(rep, 1)
        dt = torch.float64 if query.dtype == torch.float64 else torch.float32
        scores = torch.matmul(query.to(dt), k.to(dt).transpose(-1, -2)) * scaling
        if causal:
            n_q, n_k = scores.shape[-2:]
            keep = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        lse = torch.logsumexp(scores, -1)
        out = torch.matmul(torch.softmax(scores, -1), v.to(dt))
        return out.to(query.dtype), lse.float() if dt != torch.float64 else lse
    if kernel == "cudnn":
        k, v = (keys.repeat_interleave(rep, 1), values.repeat_interleave(rep, 1)) if rep > 1 else (keys, values)
        res = torch.ops.aten._scaled_dot_product_cudnn_attention(query, k, v, None, True, 0.0, causal, False,
                                                                  scale=scaling)
    elif kernel == "flash":
        res = torch.ops.aten._scaled_dot_product_flash_attention(query, keys, values, 0.0, causal, False,
                                                                  scale=scaling)
    else:
        raise ValueError(f"unknown attention kernel {kernel!r}; valid: {', '.join(KERNELS)}")
    out, lse = res[0], res[1]
    return out, lse.reshape(query.shape[:3]).float()


def merge(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """One softmax over the union of the pieces' keys, from each piece's output and log-sum-exp (a row that saw
    no key of a piece has lse −inf there and weight 0)."""
    lse = torch.logsumexp(torch.stack([p[1] for p in parts]), 0)
    dt = torch.float64 if parts[0][0].dtype == torch.float64 else torch.float32
    out = None
    for o, part_lse in parts:  # accumulated in place in fp32: one buffer, not a cast and a product per piece
        weight = torch.exp(part_lse - lse)[..., None].to(dt)
        out = o.to(dt) * weight if out is None else out.addcmul_(o, weight)
    return out.to(parts[0][0].dtype)


_FAILED: set[str] = set()  # kernels that raised or missed the reference in this process: FlexAttention from then on
_CHECKED: set[str] = set()  # kernels whose first chunk in this process matched the masked reference
CHECK_BOUND = 2e-2  # relative error of the first chunk against the masked reference: bf16 operands land between
# 1e-3 and 1e-2 (docs/PERFORMANCE.md's levels); a wrong key, log-sum-exp convention or merge lands far above


def guarded(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, plan: ChunkPlan, method: MemoryMethod,
            scaling: float, kernel: str) -> torch.Tensor | None:
    """`sink_window_attention` with two guards, or None (the caller's FlexAttention path):

    * a kernel that raises (a cuDNN build that refuses the shapes, say) warns once and stays off;
    * the first chunk a kernel serves in a process is also computed by the masked reference (one dense SDPA
      call, tens of milliseconds at 4,096 × 36,864) and compared; a kernel that misses it warns once, stays
      off, and that chunk returns the reference's result. A silent error of a fast path cannot reach a run."""
    if kernel in _FAILED:
        return None
    try:
        out = sink_window_attention(query, keys, values, plan, method, scaling, kernel)
    except RuntimeError as exc:
        _FAILED.add(kernel)
        warnings.warn(f"split window attention ({kernel}) failed, using FlexAttention from here on: "
                      f"{str(exc).splitlines()[0][:200]}", stacklevel=2)
        return None
    if out is None or kernel in _CHECKED:
        return out
    from baselines.attention import masked_attention

    ref = masked_attention(query, keys, values, plan.visible(query.device), scaling)
    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    if not err <= CHECK_BOUND:
        _FAILED.add(kernel)
        warnings.warn(f"split window attention ({kernel}) is {err:.2e} from the masked reference on its first "
                      f"chunk (bound {CHECK_BOUND}); using FlexAttention from here on", stacklevel=2)
        return ref
    _CHECKED.add(kernel)
    return out


def sink_window_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, plan: ChunkPlan,
                          method: MemoryMethod, scaling: float, kernel: str = "reference") -> torch.Tensor | None:
    """Same result as masked_attention(query, keys, values, plan.visible, scaling); None if not applicable.
    query [B,H,c,dh]; keys/values [B,Hkv,n_raw,dh] laid out as the module docstring says."""
    if not applicable(plan, method):
        return None
    c, s, w = plan.length, method.sinks, method.window
    old = s + w  # raw index where the chunk starts; raw s is position start − W, seen by no query
    a_keys = torch.cat([keys[:, :, :s], keys[:, :, s + c: old]], 2)
    a_values = torch.cat([values[:, :, :s], values[:, :, s + c: old]], 2)
    part_a = piece(query, a_keys, a_values, scaling, causal=False, kernel=kernel)
    # B: queries 0 … c − 2 and kept keys j = 0 … c − 2, both reversed: a causal square
    q_b = query[:, :, : c - 1].flip(2)
    out_b, lse_b = piece(q_b, keys[:, :, s + 1: s + c].flip(2), values[:, :, s + 1: s + c].flip(2), scaling,
                         causal=True, kernel=kernel)
    out_b = torch.cat([out_b.flip(2), torch.zeros_like(out_b[:, :, :1])], 2)
    lse_b = torch.cat([lse_b.flip(2), torch.full_like(lse_b[:, :, :1], float("-inf"))], 2)
    part_c = piece(query, keys[:, :, old:], values[:, :, old:], scaling, causal=True, kernel=kernel)
    return merge([part_a, (out_b, lse_b), part_c])
