"""Analytic parameters, FLOPs and cache bytes of every memory method, as a function of the prompt length.

Two conventions, side by side, because they answer different questions:

* **paper**: the AHN paper's accounting (Table 1 formulas, Table 9 recipe; `shared/spec/paper.md` §3). It is what
  the published efficiency numbers mean, so it is what we compare against: one prefill of `L` tokens, FLOPs of
  matmuls only (causal attention counted as a triangle), `4·D·V` per token for embedding + LM head, every cached
  element 4 bytes, `W` = sinks + window.
* **actual**: what this implementation computes and stores for one request (batch 1): dense masked attention
  over all keys present in each prefill chunk, q/k/v/o and MLP projections for every token, the LM head for the
  last position only, the AHN recurrence in its recurrent form, KV in `dtype_bytes` with the fp32 AHN state and
  the per-token write-gate cache.

Every term is a small named function so it can be aligned with the implementation one by one. Pure Python
integer arithmetic (no torch), so `harness info` is instant and the numbers are exact.

Conventions of the *paper* side where the paper is silent (it only evaluates `L > W`): for `L ≤ W` every bounded
method equals full attention (AHN rule: the model equals the base on prompts that fit), so the memory (AHN
state, CT slots) and its FLOPs are counted only once a token has left the window (`L > W`); the CT memory is
counted at its full allocation `M` as soon as it is used, as in the paper's FLOPs term.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from baselines.model_configs import BASE_ALIASES, ModelDims, get_dims, resolve_base

__all__ = [
    "AHN_CELL_MATVECS",
    "AHN_GATES",
    "CostReport",
    "GATE_CACHE_LAYOUT",
    "METHODS",
    "PAPER_NAMES",
    "STATE_BYTES",
    "TABLE9_LENGTH",
    "TABLE9_ORDER",
    "TABLE9_SINKS",
    "TABLE9_WINDOW",
    "ahn_cell_flops",
    "ahn_gate_cache_bytes",
    "ahn_gate_flops",
    "ahn_output_flops",
    "ahn_state_bytes",
    "attention_flops",
    "cache_bytes_actual",
    "canonical_method",
    "ct_memory_bytes",
    "ct_slot_counts",
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
]

METHODS: tuple[str, ...] = ("full", "swa", "ct-max", "ct-avg", "ahn-gdn", "ahn-dn", "ahn-mamba2")
AHN_METHODS: tuple[str, ...] = ("ahn-gdn", "ahn-dn", "ahn-mamba2")
CT_METHODS: tuple[str, ...] = ("ct-max", "ct-avg")

#: Row labels of the paper's tables.
PAPER_NAMES: dict[str, str] = {
    "full": "Full Attn",
    "swa": "Sinks+SWA",
    "ct-max": "CT-Max",
    "ct-avg": "CT-Average",
    "ahn-mamba2": "AHN-Mamba2",
    "ahn-dn": "AHN-DN",
    "ahn-gdn": "AHN-GDN",
}
#: Row order of Tables 2, 6 and 9.
TABLE9_ORDER: tuple[str, ...] = ("full", "swa", "ct-max", "ct-avg", "ahn-mamba2", "ahn-dn", "ahn-gdn")

_ALIASES: dict[str, str] = {
    **{v.lower(): k for k, v in PAPER_NAMES.items()},
    "full-attn": "full", "full_attention": "full", "full-attention": "full",
    "sinks-swa": "swa", "sinks+swa": "swa", "sink+swa": "swa", "window": "swa",
    "ct-average": "ct-avg", "ct-mean": "ct-avg",
    "gdn": "ahn-gdn", "dn": "ahn-dn", "mamba2": "ahn-mamba2",
}

#: Recipe settings of Table 9 (paper.md §3.1): L = 128,000 and W = 32,768 with the 128 sinks included.
TABLE9_LENGTH = 128_000
TABLE9_SINKS = 128
TABLE9_WINDOW = 32_640

#: Bytes of one element of the AHN recurrent state (kept in fp32 whatever the KV dtype).
STATE_BYTES = 4
#: Bytes of one element in the paper's cache accounting.
PAPER_ELEMENT_BYTES = 4
#: CT pooling ratio: raw tokens per compressed slot.
CT_POOL = 4

#: Gate projections of each AHN cell: (write gates, computed per token entering the gate cache; read gates,
#: computed per query that reads the memory). GDN: β and α write, output gate g; DN: β and g;
#: Mamba2: Δ and g. The paper's Table 1 counts all of them per compressed token (3 for GDN, 2 otherwise).
AHN_GATES: dict[str, tuple[int, int]] = {"ahn-gdn": (2, 1), "ahn-dn": (1, 1), "ahn-mamba2": (1, 1)}

#: dh×dh matrix–vector products per head: (per written token, per reading query). GDN/DN write = Sᵀk and the
#: rank-one update; Mamba2 write = the rank-one update only (its decay is a scalar); every cell reads with one.
AHN_CELL_MATVECS: dict[str, tuple[int, int]] = {"ahn-gdn": (2, 1), "ahn-dn": (2, 1), "ahn-mamba2": (1, 1)}

#: Per-head, per-token write-gate cache of the AHN methods, as (name, bytes); None means the KV dtype.
#: GDN keeps β (computed in the KV dtype) and g (fp32); DN keeps β; Mamba2 keeps Δ in fp32.
GATE_CACHE_LAYOUT: dict[str, tuple[tuple[str, int | None], ...]] = {
    "ahn-gdn": (("beta", None), ("g", 4)),
    "ahn-dn": (("beta", None),),
    "ahn-mamba2": (("dt", 4),),
}


def canonical_method(name: str) -> str:
    """Our method id for any spelling (paper row labels included); a clear error lists the valid ones."""
    if not isinstance(name, str):
        raise ValueError(f"method must be a string, got {name!r}; valid: {', '.join(METHODS)}")
    key = name.strip().lower()
    if key in METHODS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")


def default_ct_slots(dims: ModelDims) -> int:
    """CT slots sized so the compressed memory equals the AHN state: M = dh·Nq / (2·Nkv) (paper.md §1)."""
    return dims.head_dim * dims.num_heads // (2 * dims.num_kv_heads)


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


# --------------------------------------------------------------------------------------------- parameters


def params_extra(dims: ModelDims, method: str) -> int:
    """Exact trainable parameters a method adds (ahn.md §6); the training-free methods add none."""
    method = canonical_method(method)
    d, h, dh, n = dims.hidden_size, dims.num_heads, dims.head_dim, dims.num_layers
    out_map = dh * dh * h  # zero-initialised per-head output map o_proj [H, dh, dh]
    if method == "ahn-gdn":  # b/a/g projections, A_log, D (unused), dt_bias, shared o_norm [dh]
        per_layer = 3 * d * h + 3 * h + dh + out_map
    elif method == "ahn-dn":  # b/g projections, shared o_norm [dh]
        per_layer = 2 * d * h + dh + out_map
    elif method == "ahn-mamba2":  # dt/g projections with biases, dt_bias, A_log, joint norm [H·dh]
        per_layer = 2 * d * h + 4 * h + dh * h + out_map
    else:
        per_layer = 0
    return n * per_layer


# --------------------------------------------------------------------------------------- paper convention


def _paper_gate_count(method: str) -> int:
    """Table 1 counts `3DNq` gate FLOPs for GDN and `2DNq` for DN / Mamba2 (paper.md §3.2)."""
    return 3 if method == "ahn-gdn" else 2


def paper_mixing_flops(dims: ModelDims, method: str, length: int, window_total: int,
                       ct_slots: int | None = None) -> int:
    """Token-mixing FLOPs of one prefill, Table 1 × layers; `window_total` is the paper's W (sinks included)."""
    method = canonical_method(method)
    d, hq, hkv, dh = dims.hidden_size, dims.num_heads, dims.num_kv_heads, dims.head_dim
    big_l = length
    proj = 4 * big_l * d * dh * (hq + hkv)
    if method == "full":
        return dims.num_layers * (proj + 2 * dh * hq * big_l * big_l)
    kept = min(big_l, window_total)
    evicted = max(big_l - window_total, 0)
    per_layer = proj + 2 * dh * hq * kept * kept + 2 * evicted * (2 * window_total * dh * hq)
    if method in CT_METHODS:
        slots = default_ct_slots(dims) if ct_slots is None else ct_slots
        per_layer += 2 * evicted * 2 * slots * dh * hq
    elif method in AHN_METHODS:
        per_layer += 2 * evicted * (dh * dh * hq + _paper_gate_count(method) * d * hq + dh * dh * hq)
    return dims.num_layers * per_layer


def paper_model_flops(dims: ModelDims, method: str, length: int, window_total: int,
                      ct_slots: int | None = None) -> int:
    """Mixing + MLP (`6·D·I` per token per layer) + embedding and LM head (`4·D·V` per token) (paper.md §3.3)."""
    mlp = length * dims.num_layers * 6 * dims.hidden_size * dims.intermediate_size
    vocab = length * 4 * dims.hidden_size * dims.vocab_size
    return paper_mixing_flops(dims, method, length, window_total, ct_slots) + mlp + vocab


def paper_cache_bytes(dims: ModelDims, method: str, length: int, window_total: int,
                      ct_slots: int | None = None) -> int:
    """Cache elements × 4 bytes (paper.md §3.4): KV of the kept tokens plus the method's memory once used."""
    method = canonical_method(method)
    n, hkv, dh = dims.num_layers, dims.num_kv_heads, dims.head_dim
    kept = length if method == "full" else min(length, window_total)
    elements = n * 2 * kept * dh * hkv
    if length > window_total:
        if method in AHN_METHODS:
            elements += n * dh * dh * dims.num_heads
        elif method in CT_METHODS:
            slots = default_ct_slots(dims) if ct_slots is None else ct_slots
            elements += n * 2 * slots * dh * hkv
    return PAPER_ELEMENT_BYTES * elements


def paper_training_flops(dims: ModelDims, method: str, length: int = 24_000, window_total: int = 8_192,
                         batch: int = 128, passes: int = 2) -> int:
    """Training FLOPs per optimiser step, Table 7's convention: passes × batch × model FLOPs of one sequence.

    `passes = 2` is the factor the published Full and SWA numbers imply for 3B and 14B (paper.md §3.8); the
    usual forward + backward = 3 forwards does not reproduce them.
    """
    return passes * batch * paper_model_flops(dims, method, length, window_total)


# -------------------------------------------------------------------------------------- actual: cache bytes


def kv_cache_bytes(dims: ModelDims, n_tokens: int, dtype_bytes: int = 2) -> int:
    """Keys and values of `n_tokens` positions over all layers."""
    return 2 * dims.num_kv_heads * dims.head_dim * n_tokens * dtype_bytes * dims.num_layers


def ahn_state_bytes(dims: ModelDims) -> int:
    """The fp32 recurrent state, one dh×dh matrix per query head per layer."""
    return dims.num_heads * dims.head_dim * dims.head_dim * STATE_BYTES * dims.num_layers


def _gate_bytes_per_token(method: str, dtype_bytes: int) -> int:
    return sum(dtype_bytes if size is None else size for _, size in GATE_CACHE_LAYOUT[method])


def ahn_gate_cache_bytes(dims: ModelDims, method: str, n_window: int, dtype_bytes: int = 2) -> int:
    """Write gates of the non-sink tokens still in the window, kept so eviction needs no recomputation."""
    method = canonical_method(method)
    return dims.num_heads * n_window * _gate_bytes_per_token(method, dtype_bytes) * dims.num_layers


def ct_slot_counts(length: int, sinks: int, window: int, slots: int) -> tuple[int, int]:
    """(filled slots, raw tokens waiting for a full group of 4) after `length` tokens."""
    evicted = max(length - sinks - window, 0)
    return min(slots, evicted // CT_POOL), evicted % CT_POOL


def ct_memory_bytes(dims: ModelDims, n_slots: int, n_pending: int, dtype_bytes: int = 2) -> int:
    """CT memory: each slot is one pooled key and value per KV head, and pending raw tokens are plain KV."""
    return kv_cache_bytes(dims, n_slots + n_pending, dtype_bytes)


def cache_bytes_actual(dims: ModelDims, method: str, length: int, sinks: int, window: int, *,
                       ct_slots: int | None = None, dtype_bytes: int = 2) -> int:
    """Bytes the method's cache holds after a prefill of `length` tokens (batch 1).

    The fp32 AHN state is allocated when the first token leaves the window (before that the model is exactly
    sinks + window attention), so it is counted once `length > sinks + window`.
    """
    method = canonical_method(method)
    _check(length, sinks, window, ct_slots, None, dtype_bytes)
    kept = length if method == "full" else min(length, sinks + window)
    total = kv_cache_bytes(dims, kept, dtype_bytes)
    if method in AHN_METHODS:
        if length > sinks + window:
            total += ahn_state_bytes(dims)
        n_window = min(max(length - sinks, 0), window)
        total += ahn_gate_cache_bytes(dims, method, n_window, dtype_bytes)
    elif method in CT_METHODS:
        slots = default_ct_slots(dims) if ct_slots is None else ct_slots
        filled, pending = ct_slot_counts(length, sinks, window, slots)
        total += ct_memory_bytes(dims, filled, pending, dtype_bytes)
    return total


# ------------------------------------------------------------------------------------------ actual: FLOPs


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


def ahn_cell_flops(dims: ModelDims, method: str, n_written: int, n_read: int) -> int:
    """Recurrent-form cell, all layers and heads: dh×dh mat-vecs per written token and per reading query."""
    per_write, per_read = AHN_CELL_MATVECS[canonical_method(method)]
    matvec = 2 * dims.head_dim * dims.head_dim
    return dims.num_layers * dims.num_heads * matvec * (per_write * n_written + per_read * n_read)


def ahn_gate_flops(dims: ModelDims, method: str, n_gated: int, n_read: int) -> int:
    """Gate projections from the layer input x: write gates per token entering the gate cache, the output
    gate per reading query; one `D`-long dot product per gate per head."""
    write_gates, read_gates = AHN_GATES[canonical_method(method)]
    per_gate = 2 * dims.hidden_size * dims.num_heads
    return dims.num_layers * per_gate * (write_gates * n_gated + read_gates * n_read)


def ahn_output_flops(dims: ModelDims, n_read: int) -> int:
    """The per-head output map O_i (dh×dh) on each reading query."""
    return dims.num_layers * dims.num_heads * 2 * dims.head_dim * dims.head_dim * n_read


def _ahn_flops(dims: ModelDims, method: str, length: int, sinks: int, window: int) -> int:
    """All AHN work of a prefill: every non-sink token gets write gates on entry; each token leaving the
    window is written and read by the query `W` positions later (one write per read)."""
    n_gated = max(length - sinks, 0)
    n_moved = max(length - sinks - window, 0)
    return (ahn_cell_flops(dims, method, n_moved, n_moved) + ahn_gate_flops(dims, method, n_gated, n_moved)
            + ahn_output_flops(dims, n_moved))


def _ct_pairs(length: int, sinks: int, window: int, chunk: int, slots: int) -> int:
    """Query-key pairs of CT prefill as the implementation attends them: per chunk, the raw tokens kept
    before it (sinks, window and the <4 evicted tokens of an incomplete group), the FIFO slots kept before
    it plus the slots its own queries complete, and the chunk itself."""

    def complete(t: int) -> int:  # pooled groups complete once the query at position t has evicted its token
        return max(0, t - window - sinks + 1) // CT_POOL

    pairs, pos = 0, 0
    while pos < length:
        c = min(chunk, length - pos)
        done_before = complete(pos - 1)
        raw_before = min(pos, sinks) + max(0, pos - (sinks + CT_POOL * done_before))
        slot_keys = min(slots, done_before) + complete(pos + c - 1) - done_before
        pairs += c * (raw_before + c + slot_keys)
        pos += c
    return pairs


def _attention_prefill(dims: ModelDims, method: str, length: int, sinks: int, window: int,
                       chunk: int, slots: int) -> int:
    """Sum over chunks of dense attention over [kept before the chunk ; CT slots ; the chunk itself]."""
    if length == 0:
        return 0
    full_chunks, rest = divmod(length, chunk)
    if method == "full":  # keys = everything so far: closed form of Σ c·(p + c)
        pairs = chunk * chunk * full_chunks * (full_chunks + 1) // 2 + rest * length
        return attention_flops(dims, 1, pairs)
    bound = sinks + window
    if method in CT_METHODS:
        return attention_flops(dims, 1, _ct_pairs(length, sinks, window, chunk, slots))
    pairs = 0
    pos = 0
    while pos < length:
        c = min(chunk, length - pos)
        # a one-token chunk (decode) attends only the tokens kept after it: the evicted one is skipped
        pairs += min(pos + 1, bound) if c == 1 else c * (min(pos, bound) + c)
        pos += c
        if pos >= bound and length - pos >= chunk:  # every further full chunk costs the same
            steady = bound if chunk == 1 else chunk * (bound + chunk)
            k = (length - pos) // chunk
            pairs += k * steady
            pos += k * chunk
    return attention_flops(dims, 1, pairs)


def prefill_flops_actual(dims: ModelDims, method: str, length: int, sinks: int, window: int, *,
                         ct_slots: int | None = None, chunk_size: int | None = None) -> tuple[int, int]:
    """(mixing, model) FLOPs this implementation runs for one prefill of `length` tokens in chunks."""
    method = canonical_method(method)
    _check(length, sinks, window, ct_slots, chunk_size)
    chunk = length if chunk_size is None else chunk_size
    slots = default_ct_slots(dims) if ct_slots is None else ct_slots
    mixing = projection_flops(dims, length) + _attention_prefill(dims, method, length, sinks, window,
                                                                 max(chunk, 1), slots)
    if method in AHN_METHODS:
        mixing += _ahn_flops(dims, method, length, sinks, window)
    model = mixing + mlp_flops(dims, length) + (lm_head_flops(dims, 1) if length > 0 else 0)
    return mixing, model


def decode_flops(dims: ModelDims, method: str, position: int, sinks: int, window: int, *,
                 ct_slots: int | None = None) -> int:
    """Model FLOPs of decoding the token at absolute `position` (0-based) on a cache holding all before it.

    A decode step is a prefill chunk of one token, so summing this over positions 0..L−1 equals a
    `chunk_size=1` prefill plus the LM heads of the earlier positions.
    """
    method = canonical_method(method)
    _check(position, sinks, window, ct_slots)
    slots = default_ct_slots(dims) if ct_slots is None else ct_slots
    if method == "full":
        keys = position + 1
    else:
        keys = min(position + 1, sinks + window)  # the token leaving the window is not attended
        if method in CT_METHODS:  # the pairs of a one-token chunk at this position
            keys = (_ct_pairs(position + 1, sinks, window, 1, slots)
                    - _ct_pairs(position, sinks, window, 1, slots))
    total = projection_flops(dims, 1) + attention_flops(dims, 1, keys) + mlp_flops(dims, 1) + lm_head_flops(dims)
    if method in AHN_METHODS:
        gated = 1 if position >= sinks else 0
        moved = 1 if position + 1 > sinks + window else 0
        total += (ahn_cell_flops(dims, method, moved, moved) + ahn_gate_flops(dims, method, gated, moved)
                  + ahn_output_flops(dims, moved))
    return total


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


def estimate(dims: ModelDims, method: str, length: int, sinks: int, window: int, *,
             ct_slots: int | None = None, chunk_size: int | None = None, dtype_bytes: int = 2) -> CostReport:
    """Costs of `method` on a prompt of `length` tokens with `sinks` sinks and a `window` that excludes them.

    `ct_slots` (CT only) defaults to dh·Nq/(2·Nkv); `chunk_size` is the prefill chunk (None = one shot);
    `dtype_bytes` is the KV dtype of the actual cache (2 = bf16). Full attention ignores sinks and window.
    """
    method = canonical_method(method)
    _check(length, sinks, window, ct_slots, chunk_size, dtype_bytes)
    slots = (default_ct_slots(dims) if ct_slots is None else ct_slots) if method in CT_METHODS else None
    w_total = sinks + window
    extra = params_extra(dims, method)
    mixing_act, model_act = prefill_flops_actual(dims, method, length, sinks, window,
                                                 ct_slots=slots, chunk_size=chunk_size)
    return CostReport(
        method=method,
        length=length,
        sinks=sinks,
        window=window,
        params_extra=extra,
        flops_mixing=paper_mixing_flops(dims, method, length, w_total, slots),
        flops_model=paper_model_flops(dims, method, length, w_total, slots),
        cache_bytes=paper_cache_bytes(dims, method, length, w_total, slots),
        params_extra_actual=extra,  # our modules hold exactly the released tensors
        flops_mixing_actual=mixing_act,
        flops_model_actual=model_act,
        cache_bytes_actual=cache_bytes_actual(dims, method, length, sinks, window,
                                              ct_slots=slots, dtype_bytes=dtype_bytes),
        params_base=dims.num_parameters(),
        ct_slots=slots,
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
