"""The analytic cost model against independent references: the paper's printed tables and the spec's check values
(docs/COSTS.md §3, docs/AHN.md §4 and §6), plus a token-level simulation of the streaming engine for the actual FLOPs."""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from baselines.costs import (
    METHODS,
    TABLE9_LENGTH,
    ahn_gate_cache_bytes,
    ahn_state_bytes,
    cache_bytes_actual,
    canonical_method,
    decode_flops,
    default_ct_slots,
    estimate,
    kv_cache_bytes,
    lm_head_flops,
    paper_table7,
    paper_table9,
    paper_training_flops,
    params_extra,
    prefill_flops_actual,
)
from baselines.model_configs import BASES, ModelDims, get_dims, hf_config, resolve_base

EXTRA = Path(__file__).resolve().parents[2] / "leaderboards" / "paper" / "ahn_v2_extra.json"
MODEL = {"3B": "Qwen2.5-3B-Instruct", "7B": "Qwen2.5-7B-Instruct", "14B": "Qwen2.5-14B-Instruct"}
GIB, MIB = 2**30, 2**20
TINY = ModelDims(hidden_size=64, intermediate_size=96, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16,
                 vocab_size=100, name="tiny")


def _printed() -> dict:
    return json.loads(EXTRA.read_text(encoding="utf-8"))["table2_printed"]


def _agrees(value: float, printed: str) -> str | None:
    """Independent of harness.tables: does `value` round (or, failing that, truncate) to the printed digits?"""
    digits = len(printed.split(".")[1]) if "." in printed else 0
    q = Decimal(1).scaleb(-digits)
    if Decimal(repr(value)).quantize(q, ROUND_HALF_UP) == Decimal(printed):
        return "round"
    if Decimal(repr(value)).quantize(q, ROUND_DOWN) == Decimal(printed):
        return "truncate"
    return None


def _cells(base: str) -> list[tuple[str, str, float, str]]:
    """(method, key, ours, printed) for every efficiency cell of Table 9 / Table 2 for one base."""
    printed = _printed()[MODEL[base]]
    out = []
    for row in paper_table9(base):
        cells = printed[row["method"]]
        for name, vkey, pkey in (("params", "params_M", "params_pct"), ("mixing", "mix_PF", "mix_pct"),
                                 ("model", "model_PF", "model_pct"), ("cache", "cache_GB", "cache_pct")):
            value, pct = cells[name].replace(")", "").split(" (")
            out.append((row["method"], vkey, row[vkey], value))
            out.append((row["method"], pkey, row[pkey], pct))
    return out


# ------------------------------------------------------------------------------------ paper convention


@pytest.mark.parametrize("base", ["3B", "14B"])
def test_table9_every_cell_at_printed_precision(base: str) -> None:
    bad = [(m, k, v, p) for m, k, v, p in _cells(base) if _agrees(v, p) is None]
    assert not bad, bad


def test_table9_cells_that_only_truncate_are_the_known_three() -> None:
    # the paper truncates now and then ("−40.5%" = 1 − 59.43% truncated); docs/COSTS.md §3.7 names 14B DN/Mamba2 62.47%
    truncated = {(b, m, k) for b in ("3B", "14B") for m, k, v, p in _cells(b) if _agrees(v, p) == "truncate"}
    assert truncated == {("14B", "AHN-GDN", "mix_PF"), ("14B", "AHN-Mamba2", "model_pct"),
                         ("14B", "AHN-DN", "model_pct")}


def test_table9_7b_gap_is_documented() -> None:
    """docs/COSTS.md §3.7: 7B absolute FLOPs are ~7-8% lower in the paper; params, cache and mixing ratios agree."""
    for method, key, ours, printed in _cells("7B"):
        if key in ("mix_PF", "model_PF"):
            assert 1.06 < ours / float(printed) < 1.09, (method, key, ours, printed)
        elif key.startswith(("params", "cache")):
            assert _agrees(ours, printed) == "round", (method, key, ours, printed)
    rows = {r["method_id"]: r for r in paper_table9("7B")}
    assert rows["full"]["mix_PF"] == pytest.approx(3.4988, abs=5e-5)
    assert rows["full"]["model_PF"] == pytest.approx(5.2378, abs=5e-5)
    assert [round(rows[m]["mix_pct"], 1) for m in ("swa", "ct-max", "ahn-gdn")] == [48.0, 48.5, 48.2]
    assert [round(rows[m]["cache_GB"], 2) for m in ("full", "swa", "ahn-gdn")] == [14.68, 3.76, 3.81]


# docs/COSTS.md §3.6: mixing PF (Full / SWA / CT / GDN), model PF (same), cache GB (Full / SWA / AHN)
CHECK = {
    "3B": ((2.5029, 1.1656, 1.1800, 1.1699), (3.2855, 1.9482, 1.9626, 1.9525), (9.4372, 2.4159, 2.4537)),
    "14B": ((8.8262, 4.3685, 4.3985, 4.3861), (11.834, 7.3763, 7.4063, 7.3939), (50.332, 12.885, 13.011)),
}


@pytest.mark.parametrize("base", ["3B", "14B"])
def test_check_values_of_the_recipe(base: str) -> None:
    dims = get_dims(base)
    mixing, model, cache = CHECK[base]
    reps = {m: estimate(dims, m, 128_000, 128, 32_640) for m in ("full", "swa", "ct-max", "ahn-gdn")}
    order = ("full", "swa", "ct-max", "ahn-gdn")
    assert [reps[m].flops_mixing / 1e15 for m in order] == pytest.approx(mixing, rel=5e-5)
    assert [reps[m].flops_model / 1e15 for m in order] == pytest.approx(model, rel=5e-5)
    assert [reps[m].cache_bytes / 1e9 for m in ("full", "swa", "ahn-gdn")] == pytest.approx(cache, rel=5e-5)
    assert reps["ct-max"].cache_bytes == reps["ahn-gdn"].cache_bytes  # CT is sized to equal the AHN state


def test_headline_ratios_of_the_abstract() -> None:
    rows = {r["method_id"]: r for r in paper_table9("3B")}
    # "−40.5% FLOPs" is 1 − 59.43% truncated; "−74.0% cache" is 1 − 26.0%
    assert 100 - rows["ahn-gdn"]["model_pct"] == pytest.approx(40.57, abs=0.01)
    assert round(100 - rows["ahn-gdn"]["cache_pct"], 1) == 74.0


def test_figure3_values_at_256k() -> None:
    """docs/COSTS.md §5: the recipe at 256k (262,144 tokens) gives Full 1.19e16 / 1.93e10 B and AHN 4.17e15 / 2.45e9."""
    dims = get_dims("3B")
    full = estimate(dims, "full", 262_144, 128, 32_640)
    ahn = estimate(dims, "ahn-gdn", 262_144, 128, 32_640)
    assert (round(full.flops_model / 1e16, 2), round(full.cache_bytes / 1e10, 2)) == (1.19, 1.93)
    assert (round(ahn.flops_model / 1e15, 2), round(ahn.cache_bytes / 1e9, 2)) == (4.17, 2.45)


def test_table7_training_flops_factor() -> None:
    """Table 7 = 2 × 128 × model FLOPs at L = 24,000, W = 8,192 (docs/COSTS.md §3.8); 3 passes would not fit."""
    published = json.loads(EXTRA.read_text(encoding="utf-8"))["table7_training_flops"]
    for base in ("3B", "14B"):
        rows = {r["method_id"]: r["train_1e17"] for r in paper_table7(base)}
        assert round(rows["full"], 4) == published[MODEL[base]]["Full"]
        assert round(rows["swa"], 4) == published[MODEL[base]]["SWA"]
    assert round(paper_table7("3B")[2]["train_1e17"], 4) == 0.5423  # paper prints 0.5422
    assert round(paper_table7("14B")[2]["train_1e17"], 4) == 2.2327  # paper prints 2.2319
    assert paper_training_flops(get_dims("3B"), "full", passes=3) / 1e17 == pytest.approx(0.6348 * 1.5, rel=1e-4)
    seven = {r["method_id"]: r["train_1e17"] for r in paper_table7("7B")}
    assert 1.06 < seven["full"] / published[MODEL["7B"]]["Full"] < 1.08  # off as in Table 9


@pytest.mark.parametrize(
    ("base", "expected"),
    [("3B", (11_872_512, 11_801_088, 12_982_464)), ("7B", (18_568_256, 18_468_352, 21_280_560)),
     ("14B", (51_371_520, 51_124_224, 60_960_384))],
)
def test_params_extra_exact_counts(base: str, expected: tuple[int, int, int]) -> None:
    dims = get_dims(base)
    assert tuple(params_extra(dims, m) for m in ("ahn-mamba2", "ahn-dn", "ahn-gdn")) == expected
    rep = estimate(dims, "ahn-gdn", 1000, 128, 32_640)
    assert rep.params_extra == rep.params_extra_actual == expected[2]
    assert all(params_extra(dims, m) == 0 for m in ("full", "swa", "ct-max", "ct-avg"))


def test_paper_convention_only_sees_sinks_plus_window_and_equals_full_when_it_fits() -> None:
    dims = get_dims("3B")
    a = estimate(dims, "ahn-gdn", 100_000, 128, 32_640)
    b = estimate(dims, "ahn-gdn", 100_000, 0, 32_768)
    assert (a.flops_mixing, a.flops_model, a.cache_bytes) == (b.flops_mixing, b.flops_model, b.cache_bytes)
    full = estimate(dims, "full", 20_000, 128, 32_640)
    for method in METHODS:
        rep = estimate(dims, method, 20_000, 128, 32_640)
        assert (rep.flops_mixing, rep.flops_model, rep.cache_bytes) == (
            full.flops_mixing, full.flops_model, full.cache_bytes), method


def test_cache_flat_for_bounded_methods_and_linear_for_full() -> None:
    dims = get_dims("3B")
    s, w = 128, 32_640
    m = default_ct_slots(dims)
    lengths = [s + w + 4 * m + k for k in (0, 4, 1_000, 100_000, 1_000_000)]
    for method in ("swa", "ahn-gdn", "ahn-dn", "ahn-mamba2", "ct-max", "ct-avg"):
        paper = {estimate(dims, method, n, s, w).cache_bytes for n in lengths}
        actual = {estimate(dims, method, n, s, w).cache_bytes_actual for n in lengths}
        assert len(paper) == 1 and len(actual) == 1, method  # lengths differ by multiples of 4: no pending CT
    # CT: up to 3 pending raw tokens on top of the flat part
    ct = [estimate(dims, "ct-max", lengths[0] + k, s, w).cache_bytes_actual for k in range(4)]
    assert [c - ct[0] for c in ct] == [kv_cache_bytes(dims, k) for k in range(4)]
    # full attention: linear in L in both conventions
    per_token_actual = kv_cache_bytes(dims, 1)
    for n in (1, 1000, 131_072):
        rep = estimate(dims, "full", n, s, w)
        assert rep.cache_bytes_actual == n * per_token_actual
        assert rep.cache_bytes == n * 4 * 36 * 2 * 128 * 2


# ------------------------------------------------------------------------------------------ actual cache


@pytest.mark.parametrize(
    ("base", "kv_token", "window_gib", "state_mib", "gdn_gate_mib", "dn_gate_mib", "full_gib"),
    [("3B", 36_864, 1.125, 36, 108, 36, 4.5), ("7B", 57_344, 1.75, 49, 147, 49, 7.0),
     ("14B", 196_608, 6.0, 120, 360, 120, 24.0)],
)
def test_actual_cache_figures_of_ahn_md_section_4(base: str, kv_token: int, window_gib: float, state_mib: int,
                                                  gdn_gate_mib: int, dn_gate_mib: int, full_gib: float) -> None:
    dims = get_dims(base)
    assert kv_cache_bytes(dims, 1) == kv_token
    assert kv_cache_bytes(dims, 32_768) == window_gib * GIB
    assert ahn_state_bytes(dims) == state_mib * MIB
    # docs/AHN.md §4 sizes the gate cache as [32768, H] per layer
    assert round(ahn_gate_cache_bytes(dims, "ahn-gdn", 32_768) / MIB) == gdn_gate_mib
    assert round(ahn_gate_cache_bytes(dims, "ahn-dn", 32_768) / MIB) == dn_gate_mib
    # deviation from docs/AHN.md §4 (2 B): our Mamba2 keeps Δ in fp32
    assert ahn_gate_cache_bytes(dims, "ahn-mamba2", 32_768) == 2 * ahn_gate_cache_bytes(dims, "ahn-dn", 32_768)
    assert estimate(dims, "full", 131_072, 128, 32_640).cache_bytes_actual == full_gib * GIB


def test_actual_cache_3b_statements() -> None:
    """docs/AHN.md §4: KV + state = 1.16 GiB, −74.2% vs full at 131,072 tokens (−71.9% counting the GDN gate cache)."""
    dims = get_dims("3B")
    n = 131_072
    full = estimate(dims, "full", n, 128, 32_640).cache_bytes_actual
    swa = estimate(dims, "swa", n, 128, 32_640).cache_bytes_actual
    gdn = estimate(dims, "ahn-gdn", n, 128, 32_640).cache_bytes_actual
    kv_state = swa + ahn_state_bytes(dims)
    assert round(kv_state / GIB, 2) == 1.16
    assert round(100 * (1 - kv_state / full), 1) == 74.2
    assert round(100 * (1 - gdn / full), 1) == 71.9
    # the gate cache counts the 32,640 non-sink window tokens (sinks are never compressed)
    assert gdn - kv_state == 36 * 16 * 32_640 * 6


def test_actual_cache_small_lengths_and_dtype() -> None:
    dims, s, w = TINY, 3, 5
    per_tok = 2 * 2 * 16 * 2 * 2  # K and V, 2 KV heads, dh 16, bf16, 2 layers
    state = 4 * 16 * 16 * 4 * 2
    assert cache_bytes_actual(dims, "ahn-gdn", 0, s, w) == 0
    assert cache_bytes_actual(dims, "ahn-gdn", 3, s, w) == 3 * per_tok  # only sinks: no state yet
    assert cache_bytes_actual(dims, "ahn-gdn", 4, s, w) == 4 * per_tok + 4 * 1 * 6 * 2  # no eviction: no state
    assert cache_bytes_actual(dims, "ahn-gdn", 9, s, w) == 8 * per_tok + state + 4 * 5 * 6 * 2
    assert cache_bytes_actual(dims, "ahn-dn", 20, s, w) == 8 * per_tok + state + 4 * 5 * 2 * 2
    assert cache_bytes_actual(dims, "ahn-mamba2", 20, s, w) == 8 * per_tok + state + 4 * 5 * 4 * 2
    # fp32 KV doubles the KV and the β gate, not the fp32 state or the fp32 g
    assert cache_bytes_actual(dims, "ahn-gdn", 20, s, w, dtype_bytes=4) == 16 * per_tok + state + 4 * 5 * 8 * 2
    m = default_ct_slots(dims)  # 16·4/(2·2) = 16
    assert m == 16
    # 8 kept + 30 evicted = 7 slots + 2 pending raw tokens
    assert cache_bytes_actual(dims, "ct-avg", 38, s, w) == (8 + 7 + 2) * per_tok
    assert cache_bytes_actual(dims, "ct-avg", 38, s, w, ct_slots=5) == (8 + 5 + 2) * per_tok


# ------------------------------------------------------------------------------------------ actual FLOPs


def _simulate(dims: ModelDims, method: str, length: int, s: int, w: int, chunk: int) -> int:
    """Walk the streaming engine token by token with explicit lists and count every matmul from scratch."""
    d, hq, hkv, dh, n = dims.hidden_size, dims.num_heads, dims.num_kv_heads, dims.head_dim, dims.num_layers
    kept: list[int] = []
    evicted: list[int] = []
    slots_cap = default_ct_slots(dims)
    pairs = 0
    for start in range(0, length, chunk):
        new = list(range(start, min(start + chunk, length)))
        raw = kept + new
        if method != "full":
            sinks = [p for p in raw if p < s]
            rest = [p for p in raw if p >= s]
            evicted += rest[: max(len(rest) - w, 0)]
            raw_after = sinks + rest[max(len(rest) - w, 0):]
        else:
            raw_after = raw
        slots = min(slots_cap, len(evicted) // 4) if method.startswith("ct") else 0
        if len(new) == 1 and method != "full":  # decode: only the tokens kept after the step are attended
            pairs += len(raw_after) + slots
        else:
            pairs += len(new) * (len(kept) + len(new) + slots)
        kept = raw_after
    mixing = n * length * (2 * d * hq * dh * 2 + 2 * d * hkv * dh * 2) + n * 4 * hq * dh * pairs
    if method.startswith("ahn"):
        moved, gated = len(evicted), max(length - s, 0)
        cell = {"ahn-gdn": 6, "ahn-dn": 6, "ahn-mamba2": 4}[method] * dh * dh * moved
        write_gates = {"ahn-gdn": 2, "ahn-dn": 1, "ahn-mamba2": 1}[method]
        mixing += n * hq * (cell + 2 * dh * dh * moved + 2 * d * (write_gates * gated + moved))
    return mixing


@pytest.mark.parametrize("method", [m for m in METHODS if not m.startswith("ct")])  # CT: see test_costs_measured
@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 64, None])
def test_actual_prefill_flops_match_a_token_level_simulation(method: str, chunk: int | None) -> None:
    s, w = 3, 5
    for length in (0, 1, 3, 8, 9, 40, 117):
        c = chunk or max(length, 1)
        mixing, model = prefill_flops_actual(TINY, method, length, s, w, chunk_size=chunk)
        assert mixing == _simulate(TINY, method, length, s, w, c), (method, length, chunk)
        lm = 2 * 64 * 100 if length else 0
        assert model == mixing + 2 * 6 * 64 * 96 * length + lm


def test_actual_one_shot_full_is_dense_and_paper_is_causal() -> None:
    dims = get_dims("3B")
    n = 10_000
    rep = estimate(dims, "full", n, 128, 32_640)
    assert rep.flops_mixing_actual - rep.flops_mixing == 36 * 2 * 128 * 16 * n * n
    # the LM head on the last position only, embeddings as lookups, versus 4·D·V per token in the paper
    assert (rep.flops_model - rep.flops_mixing) - (rep.flops_model_actual - rep.flops_mixing_actual) == (
        n * 4 * 2048 * 151_936 - 2 * 2048 * 151_936)


def test_chunking_bounds_the_attention_of_bounded_methods() -> None:
    dims = get_dims("3B")
    a, b, c = (estimate(dims, "swa", 4096 * k, 128, 32_640, chunk_size=4096) for k in (100, 200, 300))
    assert b.flops_mixing_actual - a.flops_mixing_actual == c.flops_mixing_actual - b.flops_mixing_actual  # linear
    one_shot = estimate(dims, "swa", 100_000, 128, 32_640)
    chunked = estimate(dims, "swa", 100_000, 128, 32_640, chunk_size=4096)
    assert chunked.flops_mixing_actual < one_shot.flops_mixing_actual


@pytest.mark.parametrize("method", METHODS)
def test_decode_steps_sum_to_a_chunk_of_one_prefill(method: str) -> None:
    s, w, length = 3, 5, 60
    steps = sum(decode_flops(TINY, method, t, s, w) for t in range(length))
    _, prefill = prefill_flops_actual(TINY, method, length, s, w, chunk_size=1)
    assert steps == prefill + (length - 1) * lm_head_flops(TINY)


def test_decode_is_flat_for_bounded_methods_beyond_the_window() -> None:
    dims = get_dims("7B")
    far = [decode_flops(dims, "ahn-gdn", t, 128, 32_640) for t in (40_000, 100_000, 1_000_000)]
    assert len(set(far)) == 1
    assert decode_flops(dims, "full", 100_001, 128, 32_640) > decode_flops(dims, "full", 100_000, 128, 32_640)


# ----------------------------------------------------------------------------------- inputs and configs


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"length": -5}, "-5"), ({"sinks": -1}, "sinks must be >= 0, got -1"), ({"window": 0}, "window must be >= 1 .*got 0"),
     ({"chunk_size": 0}, "chunk_size"), ({"ct_slots": -2}, "-2"), ({"dtype_bytes": 0}, "dtype_bytes")],
)
def test_bad_inputs_raise_naming_the_value(kwargs: dict, needle: str) -> None:
    args = {"length": 100, "sinks": 4, "window": 16} | kwargs
    extra = {k: args.pop(k) for k in ("chunk_size", "ct_slots", "dtype_bytes") if k in args}
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        estimate(TINY, "ct-max", args["length"], args["sinks"], args["window"], **extra)


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown method 'lru'.*full, swa, ct-max, ct-avg, ahn-mamba2, ahn-dn, ahn-gdn"):
        estimate(TINY, "lru", 10, 1, 4)
    assert canonical_method("AHN-GDN") == "ahn-gdn"
    assert canonical_method("Sinks+SWA") == "swa"
    assert canonical_method("CT-Average") == "ct-avg"
    assert canonical_method("Full Attn") == "full"


def test_model_dims_from_configs() -> None:
    cfg = hf_config("3B")
    dims = ModelDims.from_hf_config(cfg)
    assert (dims.hidden_size, dims.num_layers, dims.num_heads, dims.num_kv_heads, dims.head_dim) == (2048, 36, 16, 2, 128)
    assert dims.tie_word_embeddings and dims.qkv_bias
    assert ModelDims.from_hf_config({**cfg, "head_dim": 64}).head_dim == 64
    with pytest.raises(ValueError, match="vocab_size"):
        ModelDims.from_hf_config({k: v for k, v in cfg.items() if k != "vocab_size"})
    cfg["hidden_size"] = 1  # a copy: the embedded config is untouched
    assert hf_config("3B")["hidden_size"] == 2048
    assert [BASES[b].vocab_size for b in ("3B", "7B", "14B")] == [151_936, 152_064, 152_064]
    assert [default_ct_slots(BASES[b]) for b in ("3B", "7B", "14B")] == [512, 448, 320]
    assert resolve_base("Qwen/Qwen2.5-14B-Instruct") == resolve_base("qwen2.5-14b") == "14B"
    with pytest.raises(ValueError, match="unknown base model"):
        get_dims("70B")
    with pytest.raises(ValueError, match="multiple"):
        ModelDims(64, 96, 2, 4, 3, 16, 100)


def test_embedded_configs_build_the_real_parameter_counts() -> None:
    """The meta-device models built from our embedded configs have the published sizes (3.09B / 7.62B / 14.77B)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    for base, published in (("3B", 3.09e9), ("7B", 7.62e9), ("14B", 14.77e9)):
        cfg = transformers.Qwen2Config(**hf_config(base))
        with torch.device("meta"):
            model = transformers.Qwen2ForCausalLM(cfg)
        count = sum(p.numel() for p in model.parameters())
        assert count == get_dims(base).num_parameters()
        assert count == pytest.approx(published, rel=2e-3)
        assert ModelDims.from_hf_config(cfg, name=get_dims(base).name) == get_dims(base)
    assert TABLE9_LENGTH == 128_000


def test_cost_model_sources_import_no_torch() -> None:
    """`harness info` must stay instant: the cost model, configs and tables import only the standard library."""
    import ast
    import sys

    root = Path(__file__).resolve().parents[2]
    allowed = set(sys.stdlib_module_names) | {"baselines", "harness"}
    for rel in ("baselines/costs.py", "baselines/model_configs.py", "baselines/registry.py", "harness/tables.py"):
        tree = ast.parse((root / rel).read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert names <= allowed, (rel, names - allowed)
    from_imports = {n.module for n in ast.walk(ast.parse((root / "harness/tables.py").read_text()))
                    if isinstance(n, ast.ImportFrom)}
    assert {m for m in from_imports if m and m.startswith("baselines")} == {"baselines.costs",
                                                                             "baselines.model_configs",
                                                                             "baselines.registry"}
