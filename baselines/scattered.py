"""Scattered keeping: per layer and KV head, the kept tokens are any `budget` positions a score chooses.

Score-based eviction (SnapKV, TOVA, H2O, key-norm, random) keeps, after each forward, the `budget` raw tokens of
each KV head with the highest score; a method is one function, `score`, as in kvpress's scorer presses. Keys are
stored after RoPE (`LayerMemory.keys`), so a kept token keeps its original position without any re-rotation.

Per layer and chunk of `c` new tokens (`scattered_attention`, the readable reference; there is no fast path):

1. the raw tokens are the kept ones (every one older than the chunk, so every query of the chunk sees all of
   them) then the chunk, which attends itself causally;
2. if the raw tokens outnumber the budget and the method evicts in this phase, `score` ranks them per KV head
   and the top `budget` stay, in position order. So memory is bounded by budget + chunk during a chunked
   prefill, and a prompt prefilled in one chunk is compressed exactly once after it (kvpress's protocol).

The kept positions, per layer and head, are bookkeeping (`LayerMemory.memory["positions"]`, not cache bytes, as
the analytic models count stored elements only). A method may keep per-token state aligned with the kept
tokens (H2O's accumulated attention: named in `aligned_memory`, gathered with them, counted as cache bytes).
These methods decode with the eager engine (`decode_layout` is None), one request at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from baselines.cache import LayerMemory, MemoryCache
from baselines.interface import ForwardContext, MemoryMethod
from baselines.reference_attention import masked_attention

POSITIONS = "positions"  # the kept tokens' absolute positions [B, Hkv, n] (bookkeeping, `baselines.cache`)


@dataclass
class ScoreInputs:
    """What a score may read for one layer and forward: the raw tokens (kept, then the chunk's) per KV head."""

    layer_idx: int
    keys: torch.Tensor  # [B, Hkv, n, dh], post-RoPE
    values: torch.Tensor  # [B, Hkv, n, dh]
    positions: torch.Tensor  # [B, Hkv, n] absolute positions, increasing along n
    query: torch.Tensor  # [B, H, c, dh] the chunk's queries, post-RoPE
    scaling: float
    n_old: int  # raw tokens kept before the chunk
    memory: dict[str, torch.Tensor]  # the layer's stored method memory (aligned entries: [B, Hkv, n_old])
    new_memory: dict[str, torch.Tensor] = field(default_factory=dict)  # aligned entries [B, Hkv, n] to keep

    @property
    def groups(self) -> int:
        """Query heads per KV head."""
        return self.query.shape[1] // self.keys.shape[1]

    @property
    def end(self) -> int:
        """Tokens seen once this chunk is in: its last position + 1."""
        return int(self.positions[0, 0, -1]) + 1

    def attention(self, last: int | None = None) -> torch.Tensor:
        """Softmax attention probabilities [B, H, q, n] (fp32 at least) of the chunk's last `last` queries (all
        when None) over the raw tokens, causal within the chunk: the weights the chunk's own attention used."""
        c = self.query.shape[2]
        return self._probs(c - (c if last is None else last), c)

    def received(self, block: int = 1024) -> torch.Tensor:
        """The attention each raw token receives from all the chunk's queries, summed [B, H, n], computed `block`
        queries at a time (a 16,384-token chunk's whole weight matrix would not fit beside the model)."""
        c = self.query.shape[2]
        return sum(self._probs(lo, min(lo + block, c)).sum(2) for lo in range(0, c, block))

    def _probs(self, lo: int, hi: int) -> torch.Tensor:
        q = self.query[:, :, lo:hi]
        keys = self.keys.repeat_interleave(self.groups, 1)
        dtype = torch.promote_types(q.dtype, torch.float32)
        logits = torch.matmul(q.to(dtype), keys.to(dtype).transpose(-1, -2)) * self.scaling
        row = torch.arange(lo, hi, device=q.device)[:, None] + self.n_old  # raw index of each query
        logits = logits.masked_fill(torch.arange(keys.shape[2], device=q.device)[None, :] > row, float("-inf"))
        return logits.softmax(-1)


class ScoredEviction(MemoryMethod):
    """Base of score-based eviction: `budget` = sinks + window tokens per layer and KV head, none protected.

    `sinks` and `window` only size the budget, so a run with the same `--sinks/--window` holds the same KV bytes
    as `swa`; which tokens stay is the method's score alone (the papers protect no first tokens)."""

    keeps_scattered = True
    #: evict after decode steps too (False: compress during the prompt only, as SnapKV)
    evicts_in_decode = True
    #: names of `new_memory` entries aligned with the raw tokens [B, Hkv, n], gathered with the kept ones
    aligned_memory: tuple[str, ...] = ()

    def __init__(self, sinks: int = 0, window: int = 2048) -> None:
        if window is None:
            raise ValueError(f"{self.name} needs a finite token budget: --window (plus --sinks) tokens per head")
        super().__init__(sinks=sinks, window=window)

    @property
    def budget(self) -> int:
        """Raw tokens kept per layer and KV head after a forward."""
        return self.sinks + self.window

    def layer_budget(self, layer_idx: int) -> int:
        """Raw tokens layer `layer_idx` keeps per KV head (PyramidKV: fewer in higher layers)."""
        return self.budget

    def describe(self) -> dict:
        return {**super().describe(), "budget": self.budget}

    def new_cache(self, model) -> ScatteredCache:
        return ScatteredCache(model.config.num_hidden_layers)

    def decode_layout(self, max_tokens: int):
        return None  # kept tokens differ per head: the eager engine decodes

    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        """[B, Hkv, n] float: higher is kept. The method's one definition, which every subclass writes."""
        raise NotImplementedError(f"{type(self).__name__} subclasses ScoredEviction but defines no score(inputs) "
                                  "(docs/EVICTION.md: one function returning [B, Hkv, n], higher is kept)")

    def evicts(self, ctx: ForwardContext) -> bool:
        return self.evicts_in_decode or not ctx.decoding


class ScatteredCache(MemoryCache):
    """A `MemoryCache` whose kept tokens are per layer and KV head (`LayerMemory.memory["positions"]`)."""

    @property
    def num_kept(self) -> int:
        """Kept tokens per head (the largest over layers)."""
        return max((lm.keys.shape[2] for lm in self.layers if lm.keys is not None), default=0)

    def kept_positions(self, layer_idx: int) -> torch.Tensor:
        """[B, Hkv, n] absolute positions kept by layer `layer_idx`."""
        return self.layers[layer_idx].memory[POSITIONS]

    @property
    def positions(self) -> torch.Tensor:
        """Positions kept by the first layer's first head of the first row (for reports)."""
        if not self.layers or POSITIONS not in self.layers[0].memory:
            return torch.zeros(0, dtype=torch.long)
        return self.layers[0].memory[POSITIONS][0, 0].cpu()


def select(scores: torch.Tensor, budget: int) -> torch.Tensor:
    """Raw indices [B, Hkv, budget] of the top-`budget` scores per head, in increasing (position) order."""
    return scores.topk(budget, dim=-1).indices.sort(-1).values


def gather_tokens(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """`t` [B, Hkv, n, ...] at raw indices `idx` [B, Hkv, k]."""
    index = idx.view(*idx.shape, *([1] * (t.dim() - 3))).expand(*idx.shape, *t.shape[3:])
    return t.gather(2, index)


def scattered_attention(method: ScoredEviction, ctx: ForwardContext, layer_idx: int, query: torch.Tensor,
                        key: torch.Tensor, value: torch.Tensor, scaling: float) -> torch.Tensor:
    """One layer's attention for one chunk, then eviction to the budget. Returns [B, c, H, dh]."""
    method.take_layer_input(layer_idx)  # not read here; dropped so no layer's input outlives its attention
    lm: LayerMemory = ctx.cache.layers[layer_idx]
    b, hkv, c, _ = key.shape
    n_old = 0 if lm.keys is None else lm.keys.shape[2]
    keys = key if lm.keys is None else torch.cat([lm.keys, key], 2)
    values = value if lm.values is None else torch.cat([lm.values, value], 2)
    if c == 1:  # a decode step sees every kept token and itself
        visible = None
    else:  # every kept token is older than the chunk; the chunk sees itself causally
        visible = torch.ones(c, n_old + c, dtype=torch.bool, device=query.device)
        visible[:, n_old:] = torch.ones(c, c, dtype=torch.bool, device=query.device).tril()
    out = masked_attention(query, keys, values, visible, scaling).transpose(1, 2)
    if not ctx.store:
        return out
    new_pos = torch.arange(ctx.start, ctx.start + c, device=key.device).expand(b, hkv, c)
    positions = new_pos if n_old == 0 else torch.cat([lm.memory[POSITIONS], new_pos], 2)
    memory = dict(lm.memory)
    n = keys.shape[2]
    inputs = ScoreInputs(layer_idx=layer_idx, keys=keys, values=values, positions=positions, query=query,
                         scaling=scaling, n_old=n_old, memory=lm.memory)
    budget = method.layer_budget(layer_idx)
    if n > budget and method.evicts(ctx):
        idx = select(method.score(inputs).float(), budget)
        keys, values, positions = gather_tokens(keys, idx), gather_tokens(values, idx), positions.gather(2, idx)
        aligned = {name: inputs.new_memory[name].gather(2, idx) for name in method.aligned_memory}
    else:
        if method.aligned_memory:  # the state must follow every token, evicted or not (H2O's accumulation)
            method.score(inputs)
        aligned = {name: inputs.new_memory[name] for name in method.aligned_memory}
    memory.update(aligned)
    memory[POSITIONS] = positions
    lm.keys, lm.values, lm.memory = keys.contiguous(), values.contiguous(), memory
    return out
