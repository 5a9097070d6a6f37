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

While the window fills (nothing evicted yet, and the oldest kept key inside the last query's window), and in
full attention's chunks, every kept key is visible to every query: the mask is **A** (all kept keys, no mask)
and **C** alone, the "prefix" layout.

Each piece returns its output and the log-sum-exp of its scores; the rows are merged as
out = Σ_p exp(lse_p − lse) · out_p with lse = logsumexp_p(lse_p), i.e. one softmax over the union of the keys.
Other chunks (a window edge inside an unfull window, c > W, another visibility rule) return None and take
FlexAttention. `piece` below is the reference (plain matmuls, any device); on CUDA the pieces run through cuDNN
or flash, both of which take grouped key heads as they are. Tests hold the merge to the masked reference on the
CPU (`tests/baselines/test_split_attention.py`) and the kernels to it on the GPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from baselines import fast_paths, fused_layers
from baselines.interface import ChunkPlan, MemoryMethod
from baselines.raw_tokens import RawTokens

ENV = fast_paths.VARIABLES["window_attention"]
# setting → the kernel of the pieces ("split": cuDNN on CUDA; "flex": this path off, FlexAttention as before;
# "split-reference": the reference pieces on any device, for tests)
SETTINGS = {"split": "cudnn", "split-flash": "flash", "split-reference": "reference", "flex": None}
DEFAULT = fast_paths.FastPaths.window_attention  # "split": faster than "flex" on two machines (bench/bench_gpu.py)
KERNELS = ("cudnn", "flash", "reference")


def setting() -> str:
    """AHN_HARNESS_WINDOW_ATTENTION (unset: `DEFAULT`), read and checked with every switch (`fast_paths`)."""
    return fast_paths.current().window_attention


def kernel_for(query: torch.Tensor) -> str | None:
    """The pieces' kernel for this query under AHN_HARNESS_WINDOW_ATTENTION, or None (path off): "split" is cuDNN
    for bf16/fp16 on CUDA and off elsewhere (the CPU keeps the masked reference); unset is `DEFAULT`."""
    kernel = SETTINGS[setting()]
    if kernel == "reference":
        return kernel
    if kernel is None or not query.is_cuda or query.dtype not in (torch.bfloat16, torch.float16):
        return None
    return kernel


def layout(plan: ChunkPlan, method: MemoryMethod) -> str | None:
    """Which dense pieces the chunk's mask splits into: "window" (A, B, C of the module docstring: the window is
    full), "prefix" (A and C: every kept key is visible to every query, so the mask is the chunk's causal square
    after an unmasked block, as while the window fills or in full attention's chunks), or None."""
    if type(method).raw_visible is not MemoryMethod.raw_visible or plan.length < 2 or plan.n_old == 0:
        return None
    window, c = method.window, plan.length
    if window is None:
        return "prefix" if plan.first_old == plan.n_sink_old == 0 else None
    if c > window:
        return None
    # raw index = position (nothing evicted yet), and the oldest kept non-sink key is inside the last query's window
    if plan.first_old == plan.n_sink_old and plan.start + c - 1 - max(plan.first_old, method.sinks) < window:
        return "prefix"
    if (plan.n_sink_old == method.sinks and plan.start >= method.sinks and plan.first_old == plan.start - window
            and plan.n_old == method.sinks + window):
        return "window"
    return None


def piece(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float, causal: bool,
          kernel: str = "reference") -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of query [B,H,q,dh] over keys/values [B,Hkv,k,dh] (causal: top-left, key j ≤ query i)
    → (out [B,H,q,dh] in the query's dtype, lse [B,H,q] in fp32, fp64 for fp64 inputs).

    Grouped key heads go to the kernels as they are: cuDNN and flash read each key head once for the query heads
    it serves (measured on an H100: the same time as stacking the group's queries, 14 % under expanding the keys
    to every query head, `bench/bench_gpu.py`, docs/PERFORMANCE.md); only the reference expands them."""
    if kernel == "reference":
        rep = query.shape[1] // keys.shape[1]
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
        res = torch.ops.aten._scaled_dot_product_cudnn_attention(query, keys, values, None, True, 0.0, causal, False,
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


def unreversed(out_b: torch.Tensor, lse_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Piece B computed on reversed queries (c − 1 rows) back in query order, with the last query's row, which
    sees no key of B, as output 0 and lse −inf."""
    out = torch.cat([out_b.flip(2), torch.zeros_like(out_b[:, :, :1])], 2)
    return out, torch.cat([lse_b.flip(2), torch.full_like(lse_b[:, :, :1], float("-inf"))], 2)


def combine(out_a: torch.Tensor, lse_a: torch.Tensor, out_c: torch.Tensor, lse_c: torch.Tensor,
            out_b_reversed: torch.Tensor | None = None, lse_b_reversed: torch.Tensor | None = None) -> torch.Tensor:
    """The chunk's attention [B,H,c,dh] from its pieces (B as computed, on reversed queries), laid out in memory
    as [B,c,H,dh]: the layout the attention's output projection reads (`memory_attention` transposes it back,
    a view). Written as plain tensor operations, so inductor fuses the unreversing, the merge and the layout
    into one pass (:func:`combiner`)."""
    parts = [(out_a, lse_a), (out_c, lse_c)]
    if out_b_reversed is not None:
        parts.append(unreversed(out_b_reversed, lse_b_reversed))
    return merge(parts).transpose(1, 2).contiguous().transpose(1, 2)


def combiner(device: torch.device) -> Callable[..., torch.Tensor]:
    """:func:`combine`, compiled where AHN_HARNESS_FUSED_LAYERS fuses the prefill's elementwise work (on an H100
    the eager merge of three pieces took 0.28 ms per layer and chunk, about 0.3 s of a 128k prefill)."""
    return fused_layers.compile_shared(combine) if fused_layers.enabled(device) else combine


_FAILED: set[str] = set()  # kernels that raised or missed the reference in this process: FlexAttention from then on
_CHECKED: set[tuple[str, str]] = set()  # (kernel, layout) whose first chunk in this process matched the reference
CHECK_BOUND = 2e-2  # relative error of the first chunk against the masked reference: bf16 operands land between
# 1e-3 and 1e-2 (docs/PERFORMANCE.md's levels); a wrong key, log-sum-exp convention or merge lands far above


def guarded(query: torch.Tensor, keys: RawTokens | torch.Tensor, values: RawTokens | torch.Tensor, plan: ChunkPlan,
            method: MemoryMethod, scaling: float, kernel: str) -> torch.Tensor | None:
    """`sink_window_attention` with two guards, or None (the caller's FlexAttention path):

    * a kernel that raises (a cuDNN build that refuses the shapes, say) warns once and stays off;
    * the first chunk a kernel serves in a process in each layout is also computed by the masked reference (one
      dense SDPA call, tens of milliseconds at 4,096 × 36,864) and compared; a kernel that misses it warns once,
      stays off, and that chunk returns the reference's result. A silent error of a fast path cannot reach a run."""
    if kernel in _FAILED:
        return None
    try:
        out = sink_window_attention(query, keys, values, plan, method, scaling, kernel)
    except torch.OutOfMemoryError:
        raise  # the sample's, not the kernel's: the path stays on for the next one
    except RuntimeError as exc:
        _FAILED.add(kernel)
        warnings.warn(f"split window attention ({kernel}) failed, using FlexAttention from here on: "
                      f"{str(exc).splitlines()[0][:200]}", stacklevel=2)
        return None
    if out is None:
        return None
    checked = (kernel, layout(plan, method))
    if checked in _CHECKED:
        return out
    from baselines.reference_attention import masked_attention

    ref = masked_attention(query, _raw(keys).all(), _raw(values).all(), plan.visible(query.device), scaling)
    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    if not err <= CHECK_BOUND:
        _FAILED.add(kernel)
        warnings.warn(f"split window attention ({kernel}) is {err:.2e} from the masked reference on its first "
                      f"chunk (bound {CHECK_BOUND}); using FlexAttention from here on", stacklevel=2)
        return ref
    _CHECKED.add(checked)
    return out


def _raw(t: RawTokens | torch.Tensor) -> RawTokens:
    return t if isinstance(t, RawTokens) else RawTokens(None, t)


def sink_window_attention(query: torch.Tensor, keys: RawTokens | torch.Tensor, values: RawTokens | torch.Tensor,
                          plan: ChunkPlan, method: MemoryMethod, scaling: float,
                          kernel: str = "reference") -> torch.Tensor | None:
    """Same result as masked_attention(query, keys, values, plan.visible, scaling); None if no layout applies.
    query [B,H,c,dh]; keys/values [B,Hkv,n_raw,dh] laid out as the module docstring says, as tensors or as
    `RawTokens` (whose kept tokens, once taken, serve piece A without a copy)."""
    kind = layout(plan, method)
    if kind is None:
        return None
    keys, values = _raw(keys), _raw(values)
    combined = combiner(query.device)
    if kind == "prefix":
        n, c = plan.n_old, plan.length
        part_a = piece(query, keys.narrow(0, n), values.narrow(0, n), scaling, causal=False, kernel=kernel)
        part_c = piece(query, keys.narrow(n, c), values.narrow(n, c), scaling, causal=True, kernel=kernel)
        return combined(*part_a, *part_c)
    c, s, w = plan.length, method.sinks, method.window
    old = s + w  # raw index where the chunk starts; raw s is position start − W, seen by no query
    a = [(0, s), (s + c, old - s - c)]  # the sinks, then the kept positions every query sees
    part_a = piece(query, keys.select(a), values.select(a), scaling, causal=False, kernel=kernel)
    # B: queries 0 … c − 2 and kept keys j = 0 … c − 2, both reversed: a causal square
    part_b = piece(query[:, :, : c - 1].flip(2), keys.narrow(s + 1, c - 1).flip(2),
                   values.narrow(s + 1, c - 1).flip(2), scaling, causal=True, kernel=kernel)
    part_c = piece(query, keys.narrow(old, c), values.narrow(old, c), scaling, causal=True, kernel=kernel)
    return combined(*part_a, *part_c, *part_b)
