"""Analytic parameters, FLOPs and cache bytes of every memory method, as a function of the prompt length.

Two conventions, side by side, because they answer different questions:

* **paper**: the AHN paper's accounting (Table 1 formulas, Table 9 recipe; `docs/COSTS.md`). It is what the
  published efficiency numbers mean, so it is what we compare against: one prefill of `L` tokens, FLOPs of
  matmuls only (causal attention counted as a triangle), `4·D·V` per token for embedding + LM head, every cached
  element 4 bytes, `W` = sinks + window.
* **actual**: what this implementation computes and stores for one request (batch 1): dense masked attention
  over all keys present in each prefill chunk, q/k/v/o and MLP projections for every token, the LM head for the
  last position only, the method's memory as it is computed and stored (AHN: the recurrence in its recurrent
  form, the fp32 state and the per-token write-gate cache), KV in `dtype_bytes`.

This module holds what every method shares: the formulas of the stock model's parts, the `CostModel` base
class whose hooks a method overrides for its memory, and the report type. Each method's own terms live with
its cost model (`baselines/method_costs.py` for the training-free ones, `ahn/costs.py` for AHN), found through
the method registry (`baselines/registry.py`), never by an if-chain on names. Pure Python integer arithmetic
(no torch), so `harness info` is instant and the numbers are exact.

Conventions of the *paper* side where the paper is silent (it only evaluates `L > W`): for `L ≤ W` every bounded
method equals full attention (AHN rule: the model equals the base on prompts that fit), so the memory (AHN
state, CT slots) and its FLOPs are counted only once a token has left the window (`L > W`); the CT memory is
counted at its full allocation `M` as soon as it is used, as in the paper's FLOPs term.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from baselines.model_configs import BASE_ALIASES, ModelDims, get_dims, resolve_base
from baselines.registry import canonical_method, cost_model, get_spec, paper_methods

__all__ = [
    "CostModel",
    "CostReport",
    "METHODS",
    "PAPER_ELEMENT_BYTES",
    "PAPER_NAMES",
    "STATE_BYTES",
    "TABLE9_LENGTH",
    "TABLE9_ORDER",
    "TABLE9_SINKS",
    "TABLE9_WINDOW",
    "ahn_gate_cache_bytes",
    "ahn_state_bytes",
    "attention_flops",
    "cache_bytes_actual",
    "canonical_method",
    "decode_flops",
    "default_ct_slots",
    "estimate",
    "kv_cache_bytes",
    "lm_head_flops",
    "mlp_flops",
    "paper_cache_bytes",
    "paper_mixing_flops",
    "paper_model_flops",
    "paper_table7",
    "paper_table9",
    "paper_training_flops",
    "params_extra",
    "prefill_flops_actual",
    "projection_flops",
    "resolve_cost_model",
    "settings_of",
    "token_data_bytes",
    "window_pairs",
]

#: The methods that are rows of the paper's tables (from the registry, with their row labels).
METHODS: tuple[str, ...] = paper_methods()
PAPER_NAMES: dict[str, str] = {m: get_spec(m).paper_name for m in METHODS}
#: Row order of the paper's Tables 2, 6 and 9.
TABLE9_ORDER: tuple[str, ...] = ("full", "swa", "ct-max", "ct-avg", "ahn-mamba2", "ahn-dn", "ahn-gdn")

#: Recipe settings of Table 9 (`docs/COSTS.md`): L = 128,000 and W = 32,768 with the 128 sinks included.
TABLE9_LENGTH = 128_000
TABLE9_SINKS = 128
TABLE9_WINDOW = 32_640

#: Bytes of one element of a recurrent (AHN) state: kept in fp32 whatever the KV dtype.
STATE_BYTES = 4
#: Bytes of one element in the paper's cache accounting.
PAPER_ELEMENT_BYTES = 4


def _check(length: int, sinks: int, window: int, ct_slots: int | None = None,
           chunk_size: int | None = None, dtype_bytes: int = 2) -> None:
    """Reject impossible settings early, naming the offending value."""
    for label, value in (("length", length), ("sinks", sinks), ("window", window)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{label} must be an int, got {value!r}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if sinks < 0:
        raise ValueError(f"sinks must be >= 0, got {sinks}")
    if window < 1:
        raise ValueError(f"window must be >= 1 (it excludes the sinks), got {window}")
    if ct_slots is not None and (not isinstance(ct_slots, int) or ct_slots < 1):
        raise ValueError(f"ct_slots must be a positive int or None, got {ct_slots!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None (one shot), got {chunk_size!r}")
    if not isinstance(dtype_bytes, int) or dtype_bytes < 1:
        raise ValueError(f"dtype_bytes must be a positive int, got {dtype_bytes!r}")


# ------------------------------------------------------------------------------------- shared formulas


def kv_cache_bytes(dims: ModelDims, n_tokens: int, dtype_bytes: int = 2) -> int:
    """Keys and values of `n_tokens` positions over all layers."""
    return 2 * dims.num_kv_heads * dims.head_dim * n_tokens * dtype_bytes * dims.num_layers


def ahn_state_bytes(dims: ModelDims) -> int:
    """A recurrent fp32 state of one dh×dh matrix per query head per layer (the AHN cells' state)."""
    return dims.num_heads * dims.head_dim * dims.head_dim * STATE_BYTES * dims.num_layers


def default_ct_slots(dims: ModelDims) -> int:
    """Compressed slots holding as many elements as one dh×dh state per query head: M = dh·Nq / (2·Nkv)
    (the paper's CT baseline sizing, `docs/COSTS.md`)."""
    return dims.head_dim * dims.num_heads // (2 * dims.num_kv_heads)


def attention_flops(dims: ModelDims, n_queries: int, n_keys: int) -> int:
    """Dense (masked) attention, all layers: QKᵀ and PV, each 2·Nq·dh per query–key pair."""
    return dims.num_layers * 4 * dims.num_heads * dims.head_dim * n_queries * n_keys


def projection_flops(dims: ModelDims, n_tokens: int) -> int:
    """q/k/v/o projections of `n_tokens`, all layers (biases ignored)."""
    d, dh = dims.hidden_size, dims.head_dim
    per_token = 2 * d * dh * (2 * dims.num_heads + 2 * dims.num_kv_heads)
    return dims.num_layers * per_token * n_tokens


def mlp_flops(dims: ModelDims, n_tokens: int) -> int:
    """Gate, up and down projections of the SwiGLU MLP, all layers."""
    return dims.num_layers * 6 * dims.hidden_size * dims.intermediate_size * n_tokens


def lm_head_flops(dims: ModelDims, n_positions: int = 1) -> int:
    """LM head on `n_positions` (prefill computes the last position only; the embedding is a lookup)."""
    return 2 * dims.hidden_size * dims.vocab_size * n_positions


def window_pairs(length: int, sinks: int, window: int, chunk: int) -> int:
    """Query-key pairs of a chunked prefill over sinks + a sliding window: per chunk, the tokens kept before
    it (at most sinks + window) and the chunk itself; a one-token chunk (decode) attends only the tokens kept
    after it (the evicted one is skipped)."""
    bound = sinks + window
    pairs, pos = 0, 0
    while pos < length:
        c = min(chunk, length - pos)
        pairs += min(pos + 1, bound) if c == 1 else c * (min(pos, bound) + c)
        pos += c
        if pos >= bound and length - pos >= chunk:  # every further full chunk costs the same
            steady = bound if chunk == 1 else chunk * (bound + chunk)
            k = (length - pos) // chunk
            pairs += k * steady
            pos += k * chunk
    return pairs


# -------------------------------------------------------------------------------------- the cost model


class CostModel:
    """The costs of one memory method, torch-free. The base class is sinks + a sliding window with no memory;
    a method overrides the hooks of what its memory adds (or `bounded = False` for full attention).

    Built from the method's settings (its `describe()`; settings the costs do not depend on are ignored).
    Hooks named `paper_*` follow the paper's convention (`W` = sinks + window, per layer); the others are
    this implementation's actual work and bytes, all layers. `docs/ADDING_A_METHOD.md` shows one written.
    """

    #: False for full attention: nothing is evicted, every token stays in the cache.
    bounded: bool = True
    #: The registered method name (set by `registry.cost_model`).
    method: str = ""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    @property
    def sinks(self) -> int | None:
        """The method's sinks (from its settings; 0 for an unbounded method; None when not built from one)."""
        return 0 if not self.bounded else self.settings.get("sinks")

    @property
    def window(self) -> int | None:
        """The method's window, sinks not counted (None: unbounded, or not built from a method's settings)."""
        return None if not self.bounded else self.settings.get("window")

    def window_total(self) -> int:
        """The paper's `W`: sinks + window of the method's own settings."""
        sinks, window = settings_of(self, None, None)
        return sinks + window

    def estimate(self, dims: ModelDims, length: int, *, chunk_size: int | None = None,
                 dtype_bytes: int = 2) -> CostReport:
        """The costs of the method's own settings on a prompt of `length` tokens (both conventions)."""
        return estimate(dims, self, length, chunk_size=chunk_size, dtype_bytes=dtype_bytes)

    def slots(self, dims: ModelDims) -> int | None:
        """Compressed memory slots, for methods that have them (reported as `ct_slots`)."""
        return None

    # ---- parameters -----------------------------------------------------------------------------------
    def params_extra(self, dims: ModelDims) -> int:
        """Exact trainable parameters the method adds to the base model."""
        return 0

    # ---- paper convention -----------------------------------------------------------------------------
    def paper_memory_flops(self, dims: ModelDims, evicted: int, window_total: int) -> int:
        """Per-layer FLOPs of the memory for `evicted` tokens that left a window of `window_total`."""
        return 0

    def paper_memory_elements(self, dims: ModelDims) -> int:
        """Per-layer cache elements of the memory, counted once a token has left the window."""
        return 0

    # ---- actual ---------------------------------------------------------------------------------------
    def attention_pairs(self, dims: ModelDims, length: int, sinks: int, window: int, chunk: int) -> int:
        """Query-key pairs of a prefill of `length` tokens in chunks of `chunk`, as this implementation
        attends them (all memory keys included)."""
        if not self.bounded:  # keys = everything so far: closed form of Σ c·(p + c)
            full_chunks, rest = divmod(length, chunk)
            return chunk * chunk * full_chunks * (full_chunks + 1) // 2 + rest * length
        return window_pairs(length, sinks, window, chunk)

    def decode_keys(self, dims: ModelDims, position: int, sinks: int, window: int) -> int:
        """Keys the query at `position` attends when decoded on a cache holding all before it."""
        if not self.bounded:
            return position + 1
        return min(position + 1, sinks + window)  # the token leaving the window is not attended

    def memory_flops(self, dims: ModelDims, length: int, sinks: int, window: int) -> int:
        """FLOPs of the memory (beyond attention and projections) in a prefill of `length` tokens."""
        return 0

    def decode_memory_flops(self, dims: ModelDims, position: int, sinks: int, window: int) -> int:
        """FLOPs of the memory when decoding the token at `position`."""
        return 0

    def chunk_memory_flops(self, dims: ModelDims, length: int, sinks: int, window: int, chunk: int) -> int:
        """FLOPs of the memory in a prefill that depend on its chunks (the eviction methods' scoring)."""
        return 0

    def token_data_bytes(self, dims: ModelDims, n_tokens: int, dtype_bytes: int = 2) -> int:
        """Bytes of the per-token data the method keeps for `n_tokens` window tokens (AHN: write gates)."""
        return 0

    def memory_bytes(self, dims: ModelDims, length: int, sinks: int, window: int, dtype_bytes: int = 2) -> int:
        """Bytes the memory holds after `length` tokens, beyond the KV of the kept raw tokens."""
        return 0

    def kept_tokens(self, length: int, sinks: int, window: int) -> int:
        """Raw tokens whose keys and values stay in the cache after `length` tokens."""
        return length if not self.bounded else min(length, sinks + window)


def settings_of(model: CostModel, sinks: int | None, window: int | None) -> tuple[int, int]:
    """(sinks, window) to cost: the cost model's own (the method's settings), or those given for a model built
    from a bare name. Given values that differ from the method's are an error: one method, one window. An
    unbounded method keeps every token: it gets (0, 1), which no formula of an unbounded cost model reads."""
    if not model.bounded:
        return 0, 1
    own = {"sinks": model.sinks, "window": model.window}
    given = {"sinks": sinks, "window": window}
    for key in own:
        if given[key] is not None and own[key] is not None and given[key] != own[key]:
            raise ValueError(f"costs of {model.method or type(model).__name__}: {key}={given[key]} given, but the "
                             f"method has {key}={own[key]}; cost the method with its own settings")
    chosen = {k: own[k] if given[k] is None else given[k] for k in own}
    if chosen["window"] is None:
        raise ValueError(f"costs of {model.method or type(model).__name__}: no window (the cost model was not built "
                         "from a method's settings; pass sinks and window)")
    return chosen["sinks"] or 0, chosen["window"]


def resolve_cost_model(method: str | CostModel, ct_slots: int | None = None) -> CostModel:
    """A cost model as given, or the registered one of a method name (`ct_slots`: CT's slot count)."""
    if isinstance(method, CostModel):
        return method
    return cost_model(method, **({} if ct_slots is None else {"slots": ct_slots}))


# ---------------------------------------------------------------------------- per method, by its cost model


def params_extra(dims: ModelDims, method: str | CostModel) -> int:
    """Exact trainable parameters a method adds (`docs/AHN.md`); the training-free methods add none."""
    return resolve_cost_model(method).params_extra(dims)


def paper_mixing_flops(dims: ModelDims, method: str | CostModel, length: int, window_total: int | None = None,
                       ct_slots: int | None = None) -> int:
    """Token-mixing FLOPs of one prefill, Table 1 × layers; `window_total` is the paper's W (sinks included),
    by default the method's own (a cost model built from its settings)."""
    model = resolve_cost_model(method, ct_slots)
    window_total = model.window_total() if window_total is None and model.bounded else window_total
    d, hq, hkv, dh = dims.hidden_size, dims.num_heads, dims.num_kv_heads, dims.head_dim
    big_l = length
    proj = 4 * big_l * d * dh * (hq + hkv)
    if not model.bounded:
        return dims.num_layers * (proj + 2 * dh * hq * big_l * big_l)
    kept = min(big_l, window_total)
    evicted = max(big_l - window_total, 0)
    per_layer = proj + 2 * dh * hq * kept * kept + 2 * evicted * (2 * window_total * dh * hq)
    return dims.num_layers * (per_layer + model.paper_memory_flops(dims, evicted, window_total))


def paper_model_flops(dims: ModelDims, method: str | CostModel, length: int, window_total: int | None = None,
                      ct_slots: int | None = None) -> int:
    """Mixing + MLP (`6·D·I` per token per layer) + embedding and LM head (`4·D·V` per token) (`docs/COSTS.md`)."""
    mlp = length * dims.num_layers * 6 * dims.hidden_size * dims.intermediate_size
    vocab = length * 4 * dims.hidden_size * dims.vocab_size
    return paper_mixing_flops(dims, method, length, window_total, ct_slots) + mlp + vocab


def paper_cache_bytes(dims: ModelDims, method: str | CostModel, length: int, window_total: int | None = None,
                      ct_slots: int | None = None) -> int:
    """Cache elements × 4 bytes (`docs/COSTS.md`): KV of the kept tokens plus the method's memory once used.
    `window_total`: the paper's W, by default the method's own sinks + window."""
    model = resolve_cost_model(method, ct_slots)
    n, hkv, dh = dims.num_layers, dims.num_kv_heads, dims.head_dim
    if not model.bounded:
        return PAPER_ELEMENT_BYTES * n * 2 * length * dh * hkv
    window_total = model.window_total() if window_total is None else window_total
    kept = min(length, window_total)
    elements = n * 2 * kept * dh * hkv
    if length > window_total:
        elements += n * model.paper_memory_elements(dims)
    return PAPER_ELEMENT_BYTES * elements


def paper_training_flops(dims: ModelDims, method: str | CostModel, length: int = 24_000,
                         window_total: int = 8_192, batch: int = 128, passes: int = 2) -> int:
    """Training FLOPs per optimiser step, Table 7's convention: passes × batch × model FLOPs of one sequence.

    `passes = 2` is the factor the published Full and SWA numbers imply for 3B and 14B (`docs/COSTS.md`); the
    usual forward + backward = 3 forwards does not reproduce them.
    """
    return passes * batch * paper_model_flops(dims, method, length, window_total)


def token_data_bytes(dims: ModelDims, method: str | CostModel, n_tokens: int, dtype_bytes: int = 2) -> int:
    """Per-token data a method keeps for `n_tokens` window tokens (AHN: write gates, so eviction needs no
    recomputation)."""
    return resolve_cost_model(method).token_data_bytes(dims, n_tokens, dtype_bytes)


def ahn_gate_cache_bytes(dims: ModelDims, method: str | CostModel, n_window: int, dtype_bytes: int = 2) -> int:
    """Write gates of the non-sink tokens still in the window (`token_data_bytes` of an AHN method)."""
    return token_data_bytes(dims, method, n_window, dtype_bytes)


def cache_bytes_actual(dims: ModelDims, method: str | CostModel, length: int, sinks: int, window: int, *,
                       ct_slots: int | None = None, dtype_bytes: int = 2) -> int:
    """Bytes the method's cache holds after a prefill of `length` tokens (batch 1): KV of the kept raw tokens,
    the per-token data of the window tokens and the method's memory."""
    _check(length, sinks, window, ct_slots, None, dtype_bytes)
    model = resolve_cost_model(method, ct_slots)
    total = kv_cache_bytes(dims, model.kept_tokens(length, sinks, window), dtype_bytes)
    if model.bounded:
        n_window = min(max(length - sinks, 0), window)
        total += model.token_data_bytes(dims, n_window, dtype_bytes)
    return total + model.memory_bytes(dims, length, sinks, window, dtype_bytes)


def prefill_flops_actual(dims: ModelDims, method: str | CostModel, length: int, sinks: int, window: int, *,
                         ct_slots: int | None = None, chunk_size: int | None = None) -> tuple[int, int]:
    """(mixing, model) FLOPs this implementation runs for one prefill of `length` tokens in chunks."""
    _check(length, sinks, window, ct_slots, chunk_size)
    model = resolve_cost_model(method, ct_slots)
    chunk = max(length if chunk_size is None else chunk_size, 1)
    pairs = model.attention_pairs(dims, length, sinks, window, chunk) if length > 0 else 0
    mixing = (projection_flops(dims, length) + attention_flops(dims, 1, pairs)
              + model.memory_flops(dims, length, sinks, window)
              + (model.chunk_memory_flops(dims, length, sinks, window, chunk) if length > 0 else 0))
    total = mixing + mlp_flops(dims, length) + (lm_head_flops(dims, 1) if length > 0 else 0)
    return mixing, total


def decode_flops(dims: ModelDims, method: str | CostModel, position: int, sinks: int, window: int, *,
                 ct_slots: int | None = None) -> int:
    """Model FLOPs of decoding the token at absolute `position` (0-based) on a cache holding all before it.

    A decode step is a prefill chunk of one token, so summing this over positions 0..L−1 equals a
    `chunk_size=1` prefill plus the LM heads of the earlier positions.
    """
    _check(position, sinks, window, ct_slots)
    model = resolve_cost_model(method, ct_slots)
    keys = model.decode_keys(dims, position, sinks, window)
    return (projection_flops(dims, 1) + attention_flops(dims, 1, keys) + mlp_flops(dims, 1) + lm_head_flops(dims)
            + model.decode_memory_flops(dims, position, sinks, window))


# ----------------------------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class CostReport:
    """Costs of one method at one length, in both conventions (paper first, then actual)."""

    method: str
    length: int
    sinks: int
    window: int
    params_extra: int
    flops_mixing: int
    flops_model: int
    cache_bytes: int
    params_extra_actual: int
    flops_mixing_actual: int
    flops_model_actual: int
    cache_bytes_actual: int
    params_base: int = 0
    ct_slots: int | None = None
    chunk_size: int | None = None
    dtype_bytes: int = 2

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, for result lines and manifests."""
        return asdict(self)


def estimate(dims: ModelDims, method: str | CostModel, length: int, sinks: int | None = None,
             window: int | None = None, *, ct_slots: int | None = None, chunk_size: int | None = None,
             dtype_bytes: int = 2) -> CostReport:
    """Costs of `method` on a prompt of `length` tokens.

    `method` is a cost model built from a method (`registry.cost_model_of(built_method)`), which carries the
    method's own settings (sinks, window, CT's ratio and slots, AHN's cell): its costs need nothing more. A
    registered name needs `sinks` and a `window` that excludes them. `ct_slots` (CT only) defaults to
    dh·Nq/(2·Nkv); `chunk_size` is the prefill chunk (None = one shot); `dtype_bytes` is the KV dtype of the
    actual cache (2 = bf16). Full attention ignores sinks and window.
    """
    name = method.method if isinstance(method, CostModel) else canonical_method(method)
    model = resolve_cost_model(method, ct_slots)
    sinks, window = settings_of(model, sinks, window)
    _check(length, sinks, window, ct_slots, chunk_size, dtype_bytes)
    w_total = sinks + window
    extra = model.params_extra(dims)
    mixing_act, model_act = prefill_flops_actual(dims, model, length, sinks, window, chunk_size=chunk_size)
    return CostReport(
        method=name,
        length=length,
        sinks=sinks,
        window=window,
        params_extra=extra,
        flops_mixing=paper_mixing_flops(dims, model, length, w_total),
        flops_model=paper_model_flops(dims, model, length, w_total),
        cache_bytes=paper_cache_bytes(dims, model, length, w_total),
        params_extra_actual=extra,  # our modules hold exactly the released tensors
        flops_mixing_actual=mixing_act,
        flops_model_actual=model_act,
        cache_bytes_actual=cache_bytes_actual(dims, model, length, sinks, window, dtype_bytes=dtype_bytes),
        params_base=dims.num_parameters(),
        ct_slots=model.slots(dims),
        chunk_size=chunk_size,
        dtype_bytes=dtype_bytes,
    )


def paper_table9(base: str) -> list[dict[str, Any]]:
    """Table 9 of the paper for one base, recomputed by the recipe (unrounded; `*_pct` are ratios to Full).

    Keys follow the published JSON: params_M, params_pct, mix_PF, mix_pct, model_PF, model_pct, cache_GB,
    cache_pct; plus base, model, method (paper label) and method_id.
    """
    short = resolve_base(base)
    dims = get_dims(short)
    reports = {m: estimate(dims, m, TABLE9_LENGTH, TABLE9_SINKS, TABLE9_WINDOW) for m in TABLE9_ORDER}
    full = reports["full"]
    rows = []
    for method_id, rep in reports.items():
        rows.append({
            "base": short,
            "model": BASE_ALIASES[short].split("/")[-1],
            "method": PAPER_NAMES[method_id],
            "method_id": method_id,
            "params_M": rep.params_extra / 1e6,
            "params_pct": 100.0 * rep.params_extra / rep.params_base,
            "mix_PF": rep.flops_mixing / 1e15,
            "mix_pct": 100.0 * rep.flops_mixing / full.flops_mixing,
            "model_PF": rep.flops_model / 1e15,
            "model_pct": 100.0 * rep.flops_model / full.flops_model,
            "cache_GB": rep.cache_bytes / 1e9,
            "cache_pct": 100.0 * rep.cache_bytes / full.cache_bytes,
        })
    return rows


def paper_table7(base: str) -> list[dict[str, Any]]:
    """Table 7 (training FLOPs per step, ×1e17) by the recipe: L = 24,000, W = 8,192, ×2 ×128."""
    short = resolve_base(base)
    dims = get_dims(short)
    return [
        {"base": short, "method": PAPER_NAMES[m], "method_id": m,
         "train_1e17": paper_training_flops(dims, m) / 1e17}
        for m in ("full", "swa", "ahn-gdn")
    ]
