"""The memory-method interface and how a method attaches to an unmodified `transformers` causal LM.

Every method answers the same three questions (`docs/ARCHITECTURE.md`): what attention sees (sinks plus the last `window`
tokens, or everything), what happens to a token that leaves the window, and what it costs. The base class owns
the common machinery (which tokens are visible, which are kept, which are evicted); subclasses only say what
they do with evicted tokens.

Attaching registers one attention function and a pre-hook on every attention module that hands the layer's
input-layernormed hidden state to the method. The model is always run without an HF cache: per-request state is
a `MemoryCache` made active for one forward by `forward_context`.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import nn

from baselines.cache import LayerMemory, MemoryCache
from baselines.decode_layout import DecodeLayout

ATTENTION_NAME = "harness_memory"
SUPPORTED_MODEL_TYPES = ("qwen2", "qwen3", "llama", "mistral")

# attention module -> the method attached to it (a weak map: no attribute is added to the module)
METHOD_OF_MODULE: weakref.WeakKeyDictionary[nn.Module, MemoryMethod] = weakref.WeakKeyDictionary()


@dataclass
class ForwardContext:
    """One forward over `length` new tokens starting at absolute position `start`."""

    cache: MemoryCache
    start: int
    length: int
    store: bool  # write the kept state back (False for stateless one-shot passes, e.g. training)
    decoding: bool = False  # a decode step, not a prompt chunk (SnapKV compresses the prompt only)
    _plan: ChunkPlan | None = None

    def plan(self, method: MemoryMethod, device: torch.device) -> ChunkPlan:
        """Visibility and keep masks are the same for every layer: compute them once per forward."""
        if self._plan is None:
            self._plan = method.plan_chunk(self.cache, self.start, self.length, device)
        return self._plan


@dataclass
class ChunkPlan:
    """Where the raw tokens of a forward come from and go to, as integers (no device syncs).

    Raw tokens = the kept ones ([sinks ; contiguous run from `first_old`]) then the `length` new ones. After
    the forward, raw indices [0, n_sink_after) and [keep_idx, n_raw) stay; [n_sink_after, keep_idx) are
    evicted (positions `first_nonsink` .. `first_nonsink + n_evicted - 1`, in order).
    """

    start: int
    length: int
    n_sink_old: int
    first_old: int
    n_sink_after: int
    first_nonsink: int
    keep_idx: int
    first_after: int
    method: MemoryMethod
    extra: dict = field(default_factory=dict)

    @property
    def n_old(self) -> int:
        return self.n_sink_old + self.start - self.first_old

    @property
    def n_raw(self) -> int:
        return self.n_old + self.length

    @property
    def n_evicted(self) -> int:
        return self.keep_idx - self.n_sink_after

    @property
    def n_new_sinks(self) -> int:
        return self.n_sink_after - self.n_sink_old

    def raw_index(self, position: int) -> int:
        """Index among raw tokens of a non-sink (or new) position."""
        return self.n_sink_old + position - self.first_old

    def positions(self, device: torch.device) -> torch.Tensor:
        key = ("positions", str(device))
        if key not in self.extra:
            self.extra[key] = torch.cat([torch.arange(self.n_sink_old, device=device),
                                         torch.arange(self.first_old, self.start + self.length, device=device)])
        return self.extra[key]

    def visible(self, device: torch.device) -> torch.Tensor:
        """[length, n_raw] bool: which raw tokens each new query sees (the reference path's mask)."""
        key = ("visible", str(device))
        if key not in self.extra:
            t = torch.arange(self.start, self.start + self.length, device=device)[:, None]
            self.extra[key] = self.method.raw_visible(t, self.positions(device)[None, :])
        return self.extra[key]


STATIC_WEIGHT_PREFIX = "weight:"  # static memory entries that are weights, not per-row state

_ACTIVE: ContextVar[ForwardContext | None] = ContextVar("harness_memory_forward", default=None)


class MemoryMethod:
    """Base class: sinks + a sliding window of `window` tokens (None = unbounded) over a stock model.

    `window` never counts the sinks (paper inference default: sinks 128, window 32,640).

    The contract a method is written against (the attention function in `baselines/attention.py` calls the
    hooks once per layer and chunk, in this order; `docs/ADDING_A_METHOD.md` walks through one):

    * `raw_visible(t, a)` / `keep_from(next_query)`: which raw tokens a query sees and which stay kept. Keep both
      consistent: a token no later query sees must not be kept, and a kept token must be visible to the queries
      that need it.
    * `memory_keys(layer, plan, keys, values, start)`: extra keys/values every query of the chunk may attend
      besides the raw tokens (CT's pooled slots), with their visibility `[c, m]` and the state to store.
    * `token_data(layer_idx, x)`: per-token data to keep beside each non-sink window token (AHN's write gates),
      handed back when the token is evicted.
    * `absorb(layer_idx, layer, plan, evicted, query, x, start, new_memory)`: the tokens leaving the window, in
      position order, with their token data; may return rows to add to the attention output before `o_proj`
      (AHN's read-out) and writes what to store into `new_memory`.
    * `install` / `uninstall` / `new_cache`: modules added to the model (AHN's cells), and the request state.

    Limits of this contract, as it stands:

    * The kept raw tokens are the sinks followed by **one contiguous run** of positions (`MemoryCache` stores
      two integers for them). Score-based eviction (SnapKV, TOVA, H2O: any per-head set of positions under a
      budget) subclasses `baselines.scattered.ScoredEviction` instead and writes one `score` function.
    * Per-layer state returns two ways today: the 4th item of `memory_keys` and `absorb` writing into
      `new_memory`; both end in `LayerMemory.memory`. A tensor there counts as cache bytes unless its key is in
      `baselines.cache.BOOKKEEPING`; the method's cost model must count the same bytes.
    * Overriding `raw_visible` turns off the GPU FlexAttention fast path (`baselines/flex.py` only knows the
      base rule); memory keys always take the reference path.
    * The attention function reads the method only through public accessors: `take_layer_input` (the layer's
      normed input, captured by the pre-hook and forgotten as it is read), `is_bypassed` (the teacher switch)
      and `stateless_context`.
    * Decode: a method keeping the base visibility and no memory keys gets the static decode path
      (`decode_layout`); memory beyond the kept K/V must then implement the `static_memory*` hooks (AHN does),
      otherwise the defaults keep nothing. Any other method decodes with the eager engine.
    * Every method has a torch-free cost model, registered with it (`baselines/registry.py`).
    """

    name = "base"
    #: True for a method keeping any per-head set of positions (`baselines/scattered.py`): it attends a chunk
    #: through `scattered_attention`, and none of the sinks + window machinery below applies to it
    keeps_scattered = False

    def __init__(self, sinks: int = 128, window: int | None = 32640) -> None:
        self.sinks, self.window = self._validated(sinks, window)
        self._hidden: dict[int, torch.Tensor] = {}  # transient: this forward's layer inputs
        self._bypass = False

    # ---- configuration -------------------------------------------------------------------------------
    @staticmethod
    def _validated(sinks: int, window: int | None) -> tuple[int, int | None]:
        if not isinstance(sinks, int) or sinks < 0:
            raise ValueError(f"sinks must be an integer >= 0, got {sinks!r}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be an integer >= 1 (tokens, sinks not counted), got {window!r}")
        return sinks, window

    @contextlib.contextmanager
    def configured(self, sinks: int, window: int | None) -> Iterator[MemoryMethod]:
        """Temporarily use other sinks / window (training draws them per step). Keep backward inside."""
        old = (self.sinks, self.window)
        self.sinks, self.window = self._validated(sinks, window)
        try:
            yield self
        finally:
            self.sinks, self.window = old

    @contextlib.contextmanager
    def bypassed(self) -> Iterator[None]:
        """Plain causal attention with no memory: the frozen teacher of self-distillation."""
        old, self._bypass = self._bypass, True
        try:
            yield
        finally:
            self._bypass = old

    def describe(self) -> dict:
        return {"method": self.name, "sinks": self.sinks, "window": self.window}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "method")
        return f"{type(self).__name__}({args})"

    # ---- lifecycle -----------------------------------------------------------------------------------
    def install(self, model: nn.Module) -> None:
        """Add the method's modules to the model (AHN). Training-free methods add nothing."""

    def uninstall(self, model: nn.Module) -> None:
        """Remove what `install` added."""

    def new_cache(self, model: nn.Module) -> MemoryCache:
        return MemoryCache(model.config.num_hidden_layers)

    # ---- trained parameters (methods registered with needs_checkpoint=True) ---------------------------
    def load_checkpoint(self, model: nn.Module, folder: str) -> None:
        """Load the method's trained parameters from `folder` into the attached `model` (a ValueError says what
        does not fit). Training-free methods have none."""
        raise ValueError(f"method {self.name!r} has no trained parameters to load")

    def save_checkpoint(self, model: nn.Module, folder: str) -> None:
        """Write the method's parameters of the attached `model` to `folder`, in the format `load_checkpoint`
        reads."""
        raise ValueError(f"method {self.name!r} has no trained parameters to save")

    # ---- what the attention function reads -------------------------------------------------------------
    @property
    def is_bypassed(self) -> bool:
        """True inside `bypassed()`: attention is plain causal, nothing is remembered."""
        return self._bypass

    def remember_input(self, layer_idx: int, hidden: torch.Tensor) -> None:
        """The pre-hook's record of layer `layer_idx`'s normed input for this forward."""
        self._hidden[layer_idx] = hidden

    def take_layer_input(self, layer_idx: int) -> torch.Tensor | None:
        """The layer's input for this forward, forgotten here: kept until the next forward, every layer's would
        stay allocated through the prefill (36 × 16 MiB per 4,096-token chunk of a 3B model)."""
        return self._hidden.pop(layer_idx, None)

    def forget_inputs(self) -> None:
        self._hidden.clear()

    def stateless_context(self, length: int) -> ForwardContext:
        """A one-shot pass from position 0 that stores nothing; its plan is shared by all layers."""
        key = (length, self.sinks, self.window)
        cached = getattr(self, "_stateless", None)
        if cached is None or cached[0] != key:
            cached = (key, ForwardContext(cache=_EmptyCache(), start=0, length=length, store=False))
            self._stateless = cached
        return cached[1]

    # ---- which tokens are seen, kept, evicted --------------------------------------------------------
    def raw_visible(self, t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Query at position t sees raw token at position a: causal, and a sink or inside the window."""
        vis = a <= t
        if self.window is not None:
            vis = vis & ((a < self.sinks) | (t - a < self.window))
        return vis

    def keep_from(self, next_query: int) -> int:
        """Smallest non-sink position still needed by queries at `next_query` and later."""
        if self.window is None:
            return 0
        return max(self.sinks, next_query - self.window)

    def plan_chunk(self, cache: MemoryCache, start: int, length: int, device: torch.device) -> ChunkPlan:
        sinks = self.sinks if self.window is not None else 0
        end = start + length
        n_sink_after = min(sinks, end)
        first_nonsink = max(cache.first, sinks)
        keep_from = max(sinks, self.keep_from(end))
        n_sink_old = cache.sinks_kept
        base = n_sink_old - cache.first  # raw index = base + position, for positions >= first_old
        keep_idx = min(max(n_sink_after, base + keep_from), base + end)
        first_after = min(max(keep_from, first_nonsink), end)
        return ChunkPlan(start=start, length=length, n_sink_old=n_sink_old, first_old=cache.first,
                         n_sink_after=n_sink_after, first_nonsink=first_nonsink, keep_idx=keep_idx,
                         first_after=first_after, method=self)

    # ---- what a layer does ----------------------------------------------------------------------------
    def token_data(self, layer_idx: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-token data to remember for window tokens (AHN: write gates). Shapes [B, c, ...]."""
        return {}

    def memory_keys(
        self, layer: LayerMemory, plan: ChunkPlan, keys: torch.Tensor, values: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict] | None:
        """Extra keys/values/visibility [c, m] the queries attend besides raw tokens (CT slots)."""
        return None

    def absorb(
        self,
        layer_idx: int,
        layer: LayerMemory,
        plan: ChunkPlan,
        evicted: dict[str, torch.Tensor],
        query: torch.Tensor,
        x: torch.Tensor,
        start: int,
        new_memory: dict,
    ) -> tuple[torch.Tensor, int] | None:
        """Take the evicted tokens into memory. May return (rows [B, n, H*dh], first row) to add to the
        attention output before o_proj (AHN's read-out). `new_memory` collects what to store."""
        return None


    # ---- static decode (the fast path of `baselines.static_decode`) ----------------------------------
    def decode_layout(self, max_tokens: int) -> DecodeLayout | None:
        """Slots a request of at most `max_tokens` tokens needs in fixed decode buffers, or None when this
        method's kept tokens are not "sinks + one sliding window" (then it decodes with the eager engine).

        The base rule covers any subclass that keeps the base visibility (`raw_visible`, `keep_from`) and adds
        no attended memory keys (`memory_keys`): full attention gets one slot per position (rounded up to whole
        pieces of the split reduction, `DecodeLayout.full`), a bounded window
        `sinks` slots plus a ring of `window` (fewer when the request can never fill it)."""
        own = type(self)
        if (own.raw_visible is not MemoryMethod.raw_visible or own.keep_from is not MemoryMethod.keep_from
                or own.memory_keys is not MemoryMethod.memory_keys):
            return None
        if self.window is None:
            return DecodeLayout.full(max_tokens)
        return DecodeLayout(sinks=self.sinks, ring=max(1, min(self.window, max_tokens - self.sinks)), evicts=True)

    def static_memory(self, layer_idx: int, batch: int, layout, device: torch.device,
                      dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Fixed per-layer buffers for what the method remembers besides the kept K/V (default: nothing).
        Entries named `STATIC_WEIGHT_PREFIX`… are weights the step reads (AHN's merged projections): resetting
        the rows leaves them as they are."""
        return {}

    def load_static_memory(self, layer_idx: int, memory: dict[str, torch.Tensor], row: int, layer: LayerMemory,
                           layout, nonsink_positions: torch.Tensor) -> None:
        """Copy one prefilled request's memory (`layer`, batch 1) into `row` of the buffers."""

    def static_memory_step(self, layer: nn.Module, memory: dict[str, torch.Tensor], layout, x: torch.Tensor,
                           query: torch.Tensor, evicted_keys: torch.Tensor, evicted_values: torch.Tensor,
                           slot: torch.Tensor, evicting: torch.Tensor, nonsink: torch.Tensor) -> torch.Tensor | None:
        """One decode token per row, in place and without host syncs (the step is captured as a CUDA graph).

        `layer` is the decoder layer (the module `install` put the method's parts on), not its index: the step
        may run through torch.compile, and one compiled graph serves every layer only if nothing in it is a
        per-layer constant. x [B,1,d] is the layer input after its norm, query [B,H,1,dh] the post-RoPE query;
        evicted_keys/values [B,Hkv,1,dh] the K/V in `slot` [B] before the new token overwrites them, i.e. the
        token leaving the window where `evicting` [B] is True; `nonsink` [B] says the new token is not a sink.
        Returns rows [B,1,H*dh] to add to the attention output before o_proj (zero where nothing was read), or
        None."""
        return None

    def static_memory_nbytes(self, layer_idx: int, memory: dict[str, torch.Tensor], row: int, n_nonsink: int,
                             evicted_any: bool) -> int:
        """Bytes the eager cache would hold for this row's memory (for reports)."""
        return 0


class _EmptyCache(MemoryCache):
    """A cache with nothing kept, for stateless passes: every layer reads an empty LayerMemory."""

    def __init__(self) -> None:
        self.seen = self.sinks_kept = self.first = 0

    class _Layers:
        def __getitem__(self, idx: int) -> LayerMemory:
            return LayerMemory()

    layers = _Layers()  # type: ignore[assignment]


def active_context() -> ForwardContext | None:
    return _ACTIVE.get()


@contextlib.contextmanager
def forward_context(cache: MemoryCache, length: int, store: bool = True,
                    decoding: bool = False) -> Iterator[ForwardContext]:
    """Make `cache` the state of the next forward over `length` new tokens (`decoding`: a decode step)."""
    ctx = ForwardContext(cache=cache, start=cache.seen, length=length, store=store, decoding=decoding)
    token = _ACTIVE.set(ctx)
    try:
        yield ctx
    finally:
        _ACTIVE.reset(token)
    if store:
        plan = ctx._plan
        if plan is not None:
            cache.sinks_kept, cache.first = plan.n_sink_after, plan.first_after
        cache.seen += length


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layers of a supported causal LM (Qwen2 / Qwen3 / Llama / Mistral)."""
    check_supported(model)
    return list(model.base_model.layers)


def check_supported(model: nn.Module) -> None:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"unsupported model family {model_type!r}: memory methods attach to decoder-only models with "
            f"standard rotary attention; supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )


def capture_layer_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
    method = METHOD_OF_MODULE.get(module)
    if method is None or method.is_bypassed:  # the teacher's plain attention reads no input
        return
    hidden = kwargs.get("hidden_states", args[0] if args else None)
    method.remember_input(module.layer_idx, hidden)


def is_attached(model: nn.Module, method: MemoryMethod | None = None) -> bool:
    """True when a method (or this one) is live on every attention module: runs assert it (`docs/DEFECTS.md` D6)."""
    layers = decoder_layers(model)
    live = [METHOD_OF_MODULE.get(layer.self_attn) for layer in layers]
    ok = all(m is not None for m in live) and model.config._attn_implementation == ATTENTION_NAME
    return ok and (method is None or all(m is method for m in live))


def method_of(module: nn.Module) -> MemoryMethod | None:
    return METHOD_OF_MODULE.get(module)
