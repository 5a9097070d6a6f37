"""Static decode: B requests decoded together through fixed buffers, the whole step as one CUDA graph.

The eager engine (`baselines.engine.decode_step`: the stock modules, the registered attention function and a
growing `MemoryCache`) is the reference; this is the fast path for the same function. A step reads the
weights once for all B rows and launches one graph, so its time is close to the bytes it must read (weights +
kept KV + memory state) over the memory bandwidth instead of ~40 launches per layer of host work.

Layout. Every layer keeps its K/V in one preallocated buffer of `capacity` slots per row:
* bounded methods (sinks + window W): slots [0, s) hold the sinks and [s, s + W) the window as a ring. The
  token at position p ≥ s lives in slot s + (p − s) mod W, so a new token takes exactly the slot of the token
  that leaves the window (p − W) in the same step. Softmax attention does not care about key order, so the ring
  needs no rotation. The memory of the method (AHN: the recurrent state, and the write gates of window tokens
  in a ring aligned with the K/V ring) is updated in place.
* full attention: slot p for position p, up to the longest prompt + new tokens of the batch.
A validity mask per row hides the slots not filled yet, so rows of different lengths decode together.

One step, for every row at its own position: embed the last token, per layer norm → q/k/v → RoPE → (AHN: the
evicted token's write and the query's read) → write the new K/V into its slot → attention over the buffer →
o_proj → MLP; then the final norm, the LM head, the repetition penalty over the tokens seen, the greedy pick,
and the bookkeeping for the next step (position, validity, tokens seen), all on the device. The eager step of
the engine and this one compute the same function: `tests/baselines/test_static_decode.py` holds them equal in
fp64 for every method with a static layout, per token, for B = 1 and mixed-length batches.

What a method must say to use this path is in `MemoryMethod.decode_layout` and the `static_memory*` hooks
(defaults: no memory beyond the kept tokens). Methods whose kept tokens are not "sinks + one window" (CT's
pooled slots) return no layout and decode eagerly.
"""

from __future__ import annotations

import math
import sys
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from baselines import fast_paths
from baselines.cache import MemoryCache
from baselines.decode_layout import (
    PIECE,
    DecodeLayout,  # noqa: F401  (re-exported: the layout belongs to this path)
)
from baselines.fast_paths import DECODE_ATTENTION, FLEX_KEYS, VARIABLES  # noqa: F401  (FLEX_KEYS: re-exported)
from baselines.interface import STATIC_WEIGHT_PREFIX, MemoryMethod, decoder_layers

# The step's switches, read once with the others (`baselines/fast_paths.py`):
ENV_SWITCH = VARIABLES["step_graph"]  # "0": replay nothing, run the static step eagerly (still fixed buffers)
ENV_SPLITS = VARIABLES["decode_splits"]  # pieces of the attention's slot reduction (`decode_attention`)
ENV_COMPILE = VARIABLES["step_compile"]  # "0": uncompiled; "1": inductor; "auto" (default): inductor on CUDA
ENV_ATTENTION = VARIABLES["decode_attention"]  # the attention over the slots: `attention_setting`
ATTENTION_SETTINGS = DECODE_ATTENTION
ENV_FLEX = VARIABLES["flex_decode"]  # FlexAttention's decoding kernel options: `flex_options`
# The decoding kernel's tile, pipeline depth and warps. torch's own choice on sm_90 is 64 keys a tile, one stage,
# two warps (its heuristic sets three stages, then overwrites them: read in torch 2.13's source; 2.11 measured
# like it): no loads in flight while it computes. Three stages read K/V at 2.7 TB/s against 1.8 at B = 8 on an
# H100 (`bench/bench_flex_decode.py`, the fastest of seven candidates), and took ahn-gdn's step at 128k from
# 9.78 to 8.55 ms (`bench/bench_decode.py`, docs/PERFORMANCE.md).
FLEX_DECODE_OPTIONS: dict[str, int] = {"BLOCK_N": 64, "num_stages": 3, "num_warps": 2}
# Defaults measured on two machines (`bench/bench_decode.py`, docs/PERFORMANCE.md): on CUDA the compiled step with the
# reduction in pieces took ahn-gdn 12.4 -> 6.5 ms and swa 8.3 -> 4.7 ms per token at 128k; the CPU stays uncompiled.
DEFAULT_COMPILE, DEFAULT_SPLITS = fast_paths.FastPaths.step_compile, fast_paths.FastPaths.decode_splits


def decode_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor,
                     scaling: float, splits: int = 1) -> torch.Tensor:
    """One query per row and head over a slot buffer: query [B,H,1,dh], keys/values [B,Hkv,C,dh], bias
    [B,1,C] (0 for a valid slot, −inf otherwise) → [B,H,1,dh].

    GQA without copying K/V: the `rep` query heads of one KV head form the rows of one matrix product. Scores
    and softmax in fp32 (as SDPA's kernels do), probabilities in the values' dtype for the second product.

    `splits` > 1 cuts the second product's long reduction (over the C slots) into that many pieces run as one
    batched product and summed in fp32 (the probabilities are already normalised, so the pieces just add):
    a product of a few rows over C slots otherwise leaves most of the GPU idle."""
    b, h, _, dh = query.shape
    hkv, c = keys.shape[1], keys.shape[2]
    rep = h // hkv
    q = query.reshape(b * hkv, rep, dh)
    k = keys.reshape(b * hkv, c, dh).transpose(1, 2)
    if query.is_cuda and query.dtype in (torch.bfloat16, torch.float16):
        scores = torch.bmm(q, k, out_dtype=torch.float32)
    else:
        scores = torch.bmm(q, k).float() if query.dtype != torch.float64 else torch.bmm(q, k)
    scores = scores.view(b, hkv * rep, c) * scaling + bias
    probs = scores.softmax(-1).to(values.dtype).view(b * hkv, rep, c)
    s = math.gcd(c, max(1, splits))
    if s == 1:
        return torch.bmm(probs, values.reshape(b * hkv, c, dh)).view(b, h, 1, dh)
    n = c // s
    parts = probs.view(b * hkv, rep, s, n).transpose(1, 2).reshape(b * hkv * s, rep, n)
    vals = values.reshape(b * hkv * s, n, dh)
    if query.is_cuda and values.dtype in (torch.bfloat16, torch.float16):
        partial = torch.bmm(parts, vals, out_dtype=torch.float32)
    else:
        partial = torch.bmm(parts, vals)
    return partial.view(b * hkv, s, rep, dh).sum(1, dtype=partial.dtype if partial.dtype == torch.float64
                                                 else torch.float32).to(values.dtype).view(b, h, 1, dh)


def slot_blocks(capacity: int, device: torch.device, queries: int = 1):
    """FlexAttention's block mask for `queries` query rows (1; the GQA group where it is folded into the rows,
    :func:`group_as_rows`) over `capacity` slots: every block of 128 slots visited, none masked by it (the
    validity bias does the masking). Without it FlexAttention's default is one block of 2^30 keys, which its
    decoding kernel cannot split across SMs: on an H100 it measured 64 ms a step against 5.5
    (`python -m bench.bench_flex_decode`)."""
    from torch.nn.attention.flex_attention import create_block_mask

    def every_slot(b, h, q_idx, kv_idx):
        return kv_idx >= 0

    return create_block_mask(every_slot, B=None, H=None, Q_LEN=queries, KV_LEN=capacity, device=device)


def group_as_rows(num_heads: int, num_kv: int, setting: str) -> bool:
    """Whether FlexAttention gets the query heads of one KV head as that head's query rows (a query of length
    `num_heads // num_kv` per KV head, no GQA broadcast) rather than as query heads sharing a KV head.

    Inductor lowers a FlexAttention call to its decoding kernel (flash-decoding: the group packed into one M
    block, the slots split across SMs) only where the group is a power of two; any other group (Qwen2.5-0.5B's
    14 / 2 = 7) silently gets the main kernel, one program per query head, each reading all the slots of its KV
    head with a 128-row tile for one query row, no split (`_use_flex_decoding` in torch's
    `_inductor/kernel/flex/flex_decoding.py`, torch 2.13; docs/GQA_DECODE.md). As rows the same scores reach the
    decoding kernel with one KV head per query head: the same M block of group rows, the same grid.
    `setting`: "flex" folds only groups that are not a power of two (the others already reach the decoding
    kernel, unchanged), "flex-rows" every group, "flex-heads" none (the former call, for comparison)."""
    group = num_heads // num_kv
    if setting == "flex-rows":
        return True
    if setting == "flex-heads":
        return False
    return group & (group - 1) != 0


def split_kv(batch: int, kv_heads: int, sms: int) -> int:
    """The slot splits of FlexAttention's decoding kernel (SPLIT_KV: how many pieces of the slots run on separate
    SMs): torch's 2 * (sms // (batch * kv_heads)), at least 1, rounded down to a power of two (so the paper's
    32,768 slots, 512 tiles of 64, divide evenly among them). On an H100 at B = 1 (2 KV heads) torch's 132 took
    19.4 µs a call, 128 took 13.7 (64: 14.5); at B = 8 its 16 stayed the fastest (32: 97.3 -> 101.9 µs)
    (`python -m bench.bench_flex_decode`)."""
    splits = max(2 * (sms // max(batch * kv_heads, 1)), 1)
    return 1 << (splits.bit_length() - 1)


def flex_options(splits: int | None = None) -> dict[str, int]:
    """The decoding kernel's options: FLEX_DECODE_OPTIONS with SPLIT_KV = `splits` where given (the step passes
    :func:`split_kv`'s), or AHN_HARNESS_FLEX_DECODE as `key=int,...` over FLEX_KEYS, as it is (`default`: torch's
    own choice) (validated where it is read, `baselines/fast_paths.py`)."""
    setting = fast_paths.current().flex_decode
    if setting is None:
        return dict(FLEX_DECODE_OPTIONS) | ({} if splits is None else {"SPLIT_KV": splits})
    return fast_paths.flex_decode_options(setting) or {}


def flex_decode_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor,
                          scaling: float, blocks, options: dict[str, int] | None = None,
                          rows: bool = False) -> torch.Tensor:
    """The function of :func:`decode_attention` as one FlexAttention call over the slot blocks `blocks`
    (:func:`slot_blocks`): compiled by inductor (inside the compiled step) it becomes FlexAttention's decoding
    kernel, which reads each key and value once, packs the query heads of a KV head together (GQA without
    copies) and splits the slots across the GPU's SMs, with the softmax fused in (flash-decoding). Uncompiled it
    materialises the scores (correct, slow: tests only). The bias enters as a score modification, so the masked
    slots are those of the products' path. `options`: the kernel's (`flex_options`).

    `rows` (:func:`group_as_rows`): the query heads of KV head j (heads j·rep … j·rep + rep − 1, as GQA pairs
    them) go in as rep query rows of head j, a view of the query ([B, H, 1, dh] → [B, Hkv, rep, dh]), and the
    output is viewed back; `blocks` must then be built for rep queries. Each row's softmax is over the same
    slots with the same bias, so the function is unchanged."""
    from torch.nn.attention.flex_attention import flex_attention

    def add_bias(score, b, h, q_idx, kv_idx):
        return score + bias[b, 0, kv_idx]

    if rows:
        b, h, _, dh = query.shape
        hkv = keys.shape[1]
        out = flex_attention(query.reshape(b, hkv, h // hkv, dh), keys, values, score_mod=add_bias,
                             block_mask=blocks, scale=scaling, kernel_options=options or None)
        return out.reshape(b, h, 1, dh)
    return flex_attention(query, keys, values, score_mod=add_bias, block_mask=blocks, scale=scaling,
                          enable_gqa=query.shape[1] != keys.shape[1], kernel_options=options or None)


def graphs_enabled() -> bool:
    return fast_paths.current().step_graph


def compile_setting(device: torch.device) -> str | None:
    """The torch.compile backend of the step's pieces: AHN_HARNESS_STEP_COMPILE=0 none, =1 inductor,
    =auto (the default) inductor on CUDA and none elsewhere, or a backend name (e.g. "aot_eager" in CPU tests)."""
    setting = fast_paths.current().step_compile
    if setting == "auto":
        return "inductor" if device.type == "cuda" else None
    if setting == "0":
        return None
    if setting == "1":
        return "inductor"
    return setting  # a torch.compile backend (checked where it is read)


def auto_splits(capacity: int, device: torch.device) -> int:
    """Pieces of the attention's slot reduction, from AHN_HARNESS_DECODE_SPLITS: a number, or "auto" (the default):
    on CUDA pieces of about 1,024 slots (a product of a few rows over 32,768 slots in one piece leaves most SMs
    idle), else 1."""
    setting = fast_paths.current().decode_splits
    if setting == "auto":
        return math.gcd(capacity, max(1, capacity // PIECE)) if device.type == "cuda" else 1
    return int(setting)


def attention_setting(device: torch.device, backend: str | None) -> str:
    """The attention over the slots, from AHN_HARNESS_DECODE_ATTENTION: "products" (:func:`decode_attention`, two
    batched matrix products, the readable reference), "flex" (:func:`flex_decode_attention`, with a GQA group
    that is not a power of two folded into the query rows), "flex-rows" / "flex-heads" (every group as rows /
    as heads: :func:`group_as_rows`), or "auto" (the default): flex where inductor compiles the step on CUDA
    (the only place it becomes the fused kernel), products elsewhere."""
    setting = fast_paths.current().decode_attention
    if setting == "auto":
        return "flex" if device.type == "cuda" and backend == "inductor" else "products"
    return setting


def check_settings() -> None:
    """The step's switches (AHN_HARNESS_STEP_COMPILE, AHN_HARNESS_DECODE_SPLITS, AHN_HARNESS_DECODE_ATTENTION,
    AHN_HARNESS_FLEX_DECODE) are valid: a ValueError naming the bad value and the valid ones otherwise (read
    with every switch, `baselines/fast_paths.py`)."""
    fast_paths.current()


def begin_step(base: nn.Module, layout: DecodeLayout, valid: torch.Tensor, pos: torch.Tensor, tok: torch.Tensor,
               rows: torch.Tensor, true: torch.Tensor):
    """Where each row's new token goes, the attention bias over the slots, the embedded token and its RoPE."""
    slot = layout.slot(pos)
    evicting = layout.evicting(pos)
    nonsink = pos >= layout.sinks if layout.evicts else torch.ones_like(evicting)
    valid.index_put_((rows, slot), true)
    bias = torch.zeros(valid.shape, dtype=torch.float32, device=valid.device)
    bias = bias.masked_fill(~valid, float("-inf"))[:, None, :]
    x = base.embed_tokens(tok[:, None])
    cos, sin = base.rotary_emb(x, pos[:, None])
    return slot, evicting, nonsink, bias, x, cos, sin


MergedQKV = tuple[torch.Tensor, torch.Tensor | None]  # the q, k, v projections' weights (and biases) stacked


def merged_qkv(attn: nn.Module) -> MergedQKV | None:
    """Buffers for the attention's q, k and v projections as one product (filled by :func:`fill_qkv`), or None
    where they are not three plain Linear layers of one dtype and device (the step then calls the modules).

    At one token per row the three are matrix-vector products that read their weights and little else; k and v
    are small (2 KV heads: 1 MB each on Qwen2.5-3B), so they cost a launch and a ramp more than bytes. One
    product over the stacked weights reads the same bytes in one kernel. The copy costs the stacked weights once
    more in memory (0.38 GB on Qwen2.5-3B)."""
    lins = (attn.q_proj, attn.k_proj, attn.v_proj)
    if any(type(lin) is not nn.Linear for lin in lins):
        return None
    w = lins[0].weight
    if any(lin.weight.dtype != w.dtype or lin.weight.device != w.device for lin in lins):
        return None
    rows = sum(lin.out_features for lin in lins)
    weight = torch.empty(rows, w.shape[1], dtype=w.dtype, device=w.device)
    bias = None if all(lin.bias is None for lin in lins) else torch.empty(rows, dtype=w.dtype, device=w.device)
    return weight, bias


@torch.no_grad()
def fill_qkv(attn: nn.Module, merged: MergedQKV) -> None:
    """Copy the q, k, v projections' current weights (and biases, zeros for a projection without one) into
    `merged`, in that order."""
    weight, bias = merged
    start = 0
    for lin in (attn.q_proj, attn.k_proj, attn.v_proj):
        end = start + lin.out_features
        weight[start:end].copy_(lin.weight)
        if bias is not None and lin.bias is not None:
            bias[start:end].copy_(lin.bias)
        elif bias is not None:
            bias[start:end].zero_()
        start = end


def layer_step(layer: nn.Module, k_buf: torch.Tensor, v_buf: torch.Tensor, memory: dict[str, torch.Tensor],
               x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, slot: torch.Tensor, evicting: torch.Tensor,
               nonsink: torch.Tensor, bias: torch.Tensor, rows: torch.Tensor, method: MemoryMethod,
               layout: DecodeLayout, rope, scaling: float, splits: int, qkv: MergedQKV | None = None,
               attention: str = "products", blocks=None, flex: dict[str, int] | None = None,
               group_rows: bool = False) -> torch.Tensor:
    """One decoder layer for one token per row over its fixed buffers: norm → q/k/v (one product over `qkv`, the
    stacked weights, where given) → RoPE → the method's memory step (AHN: write the token leaving the window,
    read with the query) → the new K/V into its slot → attention over the buffer (`attention`: "products" or
    "flex" over the slot blocks `blocks` with kernel options `flex`, the GQA group as query rows where
    `group_rows`: `attention_setting`) → o_proj → MLP. A function of the layer module and tensors only (no layer
    index), so one compiled graph serves every layer."""
    attn = layer.self_attn
    b, dh = x.shape[0], k_buf.shape[-1]
    h = layer.input_layernorm(x)
    if qkv is None:
        q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)
    else:
        kv_width = k_buf.shape[1] * dh
        q, k, v = F.linear(h, *qkv).split([qkv[0].shape[0] - 2 * kv_width, kv_width, kv_width], dim=-1)
    q = q.view(b, 1, -1, dh)
    k = k.view(b, 1, -1, dh)
    if hasattr(attn, "q_norm"):  # Qwen3: per-head RMSNorm before RoPE
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    v = v.view(b, 1, -1, dh).transpose(1, 2)
    old_k, old_v = k_buf[rows, :, slot], v_buf[rows, :, slot]  # [B, Hkv, dh]: the token leaving the window
    read = method.static_memory_step(layer, memory, layout, h, q, old_k[:, :, None], old_v[:, :, None], slot,
                                     evicting, nonsink)
    k_buf[rows, :, slot] = k[:, :, 0]
    v_buf[rows, :, slot] = v[:, :, 0]
    if attention == "flex":
        out = flex_decode_attention(q, k_buf, v_buf, bias, scaling, blocks, flex, group_rows)
    else:
        out = decode_attention(q, k_buf, v_buf, bias, scaling, splits)
    out = out.transpose(1, 2).reshape(b, 1, -1)
    if read is not None:
        out = out + read.to(out.dtype)
    x = x + attn.o_proj(out)
    return x + layer.mlp(layer.post_attention_layernorm(x))


def finish_step(model: nn.Module, x: torch.Tensor, seen: torch.Tensor, logits_out: torch.Tensor,
                next_out: torch.Tensor, tok: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor, true: torch.Tensor,
                penalty: float) -> None:
    """Final norm, LM head, repetition penalty over the tokens seen, greedy pick, and the next step's inputs."""
    logits = model.lm_head(model.base_model.norm(x))[:, -1].float()
    if penalty != 1.0:
        picked = torch.where(logits < 0, logits * penalty, logits / penalty)
        logits = torch.where(seen, picked, logits)
    nxt = logits.argmax(-1)
    logits_out.copy_(logits)
    next_out.copy_(nxt)
    seen.index_put_((rows, nxt), true)
    tok.copy_(nxt)
    pos.add_(1)


_RECOMPILE_LIMIT = 64  # one graph per decoder shape (batch, capacity, dtype) and method: more than dynamo's 8


def compiled(fn, backend: str | None):
    """`fn` through torch.compile with `backend` (static shapes), or `fn` itself for None."""
    if backend is None:
        return fn
    import torch._dynamo

    config = torch._dynamo.config
    limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, limit, max(getattr(config, limit), _RECOMPILE_LIMIT))
    return torch.compile(fn, backend=backend, dynamic=False)


class StaticDecoder:
    """Fixed buffers for `batch` rows of `capacity` tokens and the decode step over them.

    Use: `reset()`, then `load(row, cache, seen_ids, first_token)` for each request after its prefill, then
    `step()` repeatedly; each returns the next token of every row (rows not loaded decode a dummy and are
    ignored). `graphs=None` replays the step as one CUDA graph on CUDA (AHN_HARNESS_STEP_GRAPH=0 turns that
    off) and runs it eagerly elsewhere. `compile=None` runs the step's pieces through torch.compile as
    AHN_HARNESS_STEP_COMPILE says (by default inductor on CUDA, none elsewhere), True for inductor, False for
    none, or a backend name; the uncompiled pieces compute the same function. `attention=None` picks the
    attention over the slots as AHN_HARNESS_DECODE_ATTENTION says (`attention_setting`), or name it.
    """

    def __init__(self, model: nn.Module, method: MemoryMethod, batch: int, max_tokens: int,
                 repetition_penalty: float = 1.0, graphs: bool | None = None,
                 compile: str | bool | None = None, attention: str | None = None) -> None:
        layout = method.decode_layout(max_tokens)
        if layout is None:
            raise ValueError(f"{method!r} has no static decode layout; decode it with the eager engine")
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
        self.model, self.method, self.layout, self.batch = model, method, layout, batch
        self.penalty = float(repetition_penalty)
        self.layers = decoder_layers(model)
        cfg = model.config
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        attn = self.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.num_heads = cfg.num_attention_heads
        self.num_kv = cfg.num_key_value_heads
        self.scaling = float(attn.scaling)
        self.rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb
        dev, b, c = self.device, batch, layout.capacity
        self.splits = auto_splits(c, dev)
        self.k = [torch.zeros(b, self.num_kv, c, self.head_dim, device=dev, dtype=self.dtype) for _ in self.layers]
        self.v = [torch.zeros_like(t) for t in self.k]
        self.memory = [method.static_memory(i, b, layout, dev, self.dtype) for i in range(len(self.layers))]
        self.valid = torch.zeros(b, c, dtype=torch.bool, device=dev)
        self.pos = torch.zeros(b, dtype=torch.long, device=dev)
        self.tok = torch.zeros(b, dtype=torch.long, device=dev)
        self.seen = torch.zeros(b, cfg.vocab_size, dtype=torch.bool, device=dev)
        self.next = torch.zeros(b, dtype=torch.long, device=dev)
        self.logits = torch.zeros(b, cfg.vocab_size, dtype=torch.float32, device=dev)
        self.rows = torch.arange(b, device=dev)
        self._true = torch.ones(b, dtype=torch.bool, device=dev)
        self.loaded = [False] * b
        use = graphs_enabled() if graphs is None else graphs
        self.graphs = bool(use) and self.device.type == "cuda"
        self._graph: torch.cuda.CUDAGraph | None = None
        backend = compile_setting(dev) if compile is None else ("inductor" if compile is True else compile or None)
        self.compile_backend = backend
        if attention is not None and attention not in ATTENTION_SETTINGS[1:]:
            raise ValueError(f"attention={attention!r}; valid: {', '.join(ATTENTION_SETTINGS[1:])} or None")
        self.attention = attention or attention_setting(dev, backend)
        # "flex", "flex-rows" and "flex-heads" are one FlexAttention call; they differ in how the GQA group goes in
        self.group_rows = self.attention != "products" and group_as_rows(self.num_heads, self.num_kv, self.attention)
        rows = self.num_heads // self.num_kv if self.group_rows else 1
        self.blocks = slot_blocks(c, dev, rows) if self.attention != "products" else None
        sms = torch.cuda.get_device_properties(dev).multi_processor_count if dev.type == "cuda" else None
        self.flex_options = flex_options(None if sms is None else split_kv(b, self.num_kv, sms))
        self.qkv = [merged_qkv(layer.self_attn) for layer in self.layers]
        self._fill_qkv()
        self._warm = False
        self._begin, self._layer, self._finish = (compiled(f, backend) for f in (begin_step, layer_step, finish_step))
        self.reset()

    # ---- rows --------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Every row inactive: a dummy row sees slot 0 only, so it stays finite."""
        for buffers in (self.k, self.v):
            for t in buffers:
                t.zero_()
        for mem in self.memory:
            for name, t in mem.items():
                if not name.startswith(STATIC_WEIGHT_PREFIX):  # weights stay
                    t.zero_()
        self.valid.zero_()
        self.valid[:, 0] = True
        self.pos.zero_()
        self.tok.zero_()
        self.seen.zero_()
        self.loaded = [False] * self.batch

    def load(self, row: int, cache: MemoryCache, seen_ids: torch.Tensor, first_token: int) -> None:
        """Put one prefilled request (a B = 1 cache) into `row`; `first_token` is the token it decodes next."""
        if cache.layers[0].keys is None:
            raise ValueError("load() needs a prefilled cache")
        self._fill_qkv()  # the weights as they are now
        lay = self.layout
        positions = cache.positions.to(self.device)
        if cache.seen >= lay.capacity and not lay.evicts:
            raise ValueError(f"prompt of {cache.seen} tokens does not fit {lay.capacity} slots")
        slots = lay.slot(positions)
        nonsink = positions[cache.sinks_kept:]  # the kept tokens that carry per-token data (AHN gates)
        for i, lm in enumerate(cache.layers):
            self.k[i][row].zero_()
            self.v[i][row].zero_()
            self.k[i][row][:, slots] = lm.keys[0].to(self.dtype)
            self.v[i][row][:, slots] = lm.values[0].to(self.dtype)
            self.method.load_static_memory(i, self.memory[i], row, lm, lay, nonsink)
        self.valid[row] = False
        self.valid[row, slots] = True
        self.pos[row] = cache.seen
        self.tok[row] = first_token
        self.seen[row] = False
        self.seen[row, seen_ids.reshape(-1).to(self.device)] = True
        self.seen[row, first_token] = True
        self.loaded[row] = True

    def _fill_qkv(self) -> None:
        for layer, merged in zip(self.layers, self.qkv, strict=True):
            if merged is not None:
                fill_qkv(layer.self_attn, merged)

    def floor_nbytes(self) -> int:
        """Bytes one step must read however it is computed: every weight once (an untied input embedding only
        for the rows' tokens, so not counted), every row's K/V buffer and the method's per-row memory (AHN's state
        and gate rings). Over the device's copy rate, the step's bandwidth floor (`bench/bench_decode.py`)."""
        embed = self.model.get_input_embeddings().weight
        tied = embed is self.model.get_output_embeddings().weight
        weights = sum(p.numel() * p.element_size() for p in self.model.parameters() if tied or p is not embed)
        kv = sum(t.numel() * t.element_size() for t in (*self.k, *self.v))
        memory = sum(t.numel() * t.element_size() for mem in self.memory for name, t in mem.items()
                     if not name.startswith(STATIC_WEIGHT_PREFIX))  # the weights' copies are counted as weights
        return weights + kv + memory

    def row_nbytes(self, row: int) -> int:
        """Bytes the eager engine's cache would hold for this row now: the K/V of its filled slots and the
        method's memory for them (computed from the buffers, which are preallocated at full size)."""
        if not self.loaded[row]:
            return 0
        n = int(self.valid[row].sum())
        n_nonsink = int(self.valid[row, self.layout.sinks:].sum()) if self.layout.evicts else n
        per_token = sum(t[row, :, 0].numel() * t.element_size() for t in (*self.k, *self.v))
        evicted_any = bool(self.layout.evicting(self.pos[row] - 1))
        extra = sum(self.method.static_memory_nbytes(i, self.memory[i], row, n_nonsink, evicted_any)
                    for i in range(len(self.layers)))
        return n * per_token + extra

    # ---- the step ----------------------------------------------------------------------------------
    def _step(self) -> None:
        """One token for every row; reads and writes only the fixed buffers (capturable)."""
        slot, evicting, nonsink, bias, x, cos, sin = self._begin(self.model.base_model, self.layout, self.valid,
                                                                 self.pos, self.tok, self.rows, self._true)
        for layer, k, v, memory, qkv in zip(self.layers, self.k, self.v, self.memory, self.qkv, strict=True):
            x = self._layer(layer, k, v, memory, x, cos, sin, slot, evicting, nonsink, bias, self.rows,
                            self.method, self.layout, self.rope, self.scaling, self.splits, qkv,
                            "products" if self.attention == "products" else "flex", self.blocks, self.flex_options,
                            self.group_rows)
        self._finish(self.model, x, self.seen, self.logits, self.next, self.tok, self.pos, self.rows, self._true,
                     self.penalty)

    def _warm_up(self, retry: bool) -> None:
        """Run the step once (compiling its pieces, picking kernels). If compilation fails and `retry` (the rows
        are scratch, as before a capture), warn and go on with the uncompiled pieces, which compute the same
        function; otherwise (loaded rows, perhaps half-updated by the failed step) stop with a clear error."""
        try:
            self._step()
        except Exception as exc:  # noqa: BLE001 - any compiler failure: the uncompiled step is the reference
            if self.compile_backend is None:
                raise
            if not retry:
                raise RuntimeError(f"static decode step: torch.compile ({self.compile_backend}) failed; set "
                                   f"{ENV_COMPILE}=0 to decode with the uncompiled step") from exc
            warnings.warn(f"static decode step: torch.compile ({self.compile_backend}) failed, running the "
                          f"pieces uncompiled: {type(exc).__name__}: {str(exc)[:300]}", stacklevel=3)
            self.compile_backend = None
            self._begin, self._layer, self._finish = begin_step, layer_step, finish_step
            if self.attention != "products":  # uncompiled, flex materialises the scores: the products are faster
                self.attention = "products"
            self.reset()
            self._step()

    @torch.no_grad()
    def capture(self) -> None:
        """Record the step as one CUDA graph (warm-up on a side stream first), then clear the rows."""
        if not self.graphs or self._graph is not None:
            return
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._warm_up(retry=True)
            self._step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        self._graph = graph
        self.reset()

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        """Decode one token for every row; returns the picked tokens [B] (on the device)."""
        if self.graphs:
            if self._graph is None:
                raise RuntimeError("capture() before loading rows: capture runs the step on the buffers")
            self._graph.replay()
        elif self.compile_backend is not None and not self._warm:
            self._warm = True
            self._warm_up(retry=False)
        else:
            self._step()
        return self.next
