"""The real-base claims checker on constructed runs: each claim holding and failing, the answer geometry, the
script's files and exit codes."""

from __future__ import annotations

import json

import pytest

from harness.store import Run
from studies.real_claims import NEEDLE_SPAN, answer_offset, beyond_window, check_real_claims

SINKS, WINDOW = 128, 3968
BUCKETS = {"8k": 8192, "16k": 16384, "32k": 32768}


def _records(score_fn, cache_fn, flops_fn, n: int = 16, depth: bool = False) -> list[dict]:
    out = []
    for bucket, tokens in BUCKETS.items():
        for i in range(n):
            frac = (i + 0.5) / n  # answers spread over the prompt
            extra = {"needle_depth": frac} if depth else {"needle_token_offset": int(frac * tokens)}
            rec = {"key": f"rt|{bucket}|{i}", "bucket": bucket, "prompt_tokens": tokens, "status": "ok", "extra": extra,
                   "cache_bytes_measured": cache_fn(tokens), "flops_actual": flops_fn(tokens)}
            rec["score"] = score_fn(rec)
            out.append(rec)
    return out


def _run(method: str, score_fn, cache_fn=lambda t: 50_000_000, flops_fn=lambda t: 1e9 * t, depth=False) -> Run:
    cfg = {"method": method} if method == "full" else {"method": method, "sinks": SINKS, "window": WINDOW}
    return Run(manifest={"label": f"{method}-coder", "config": {"method": cfg}},
               records=_records(score_fn, cache_fn, flops_fn, depth=depth))


def _inside(rec) -> float:
    return 0.0 if beyond_window(rec, SINKS, WINDOW) else 1.0


def _world(ahn=lambda r: 1.0, ct=_inside, ahn_cache=lambda t: 60_000_000, full_flops=lambda t: 1e9 * t + t * t,
           depth=False):
    return [_run("full", lambda r: 1.0, lambda t: 12_288 * t, full_flops, depth=depth),
            _run("swa", _inside, depth=depth), _run("ct-max", ct, depth=depth),
            _run("ahn-gdn", ahn, ahn_cache, depth=depth)]


def _by_name(claims):
    return {c.name: c for c in claims}


def test_answer_geometry_from_an_offset_or_a_depth():
    rec = {"prompt_tokens": 8192, "extra": {"needle_token_offset": 8192 - WINDOW - NEEDLE_SPAN}}
    assert beyond_window(rec, SINKS, WINDOW) is True
    rec["extra"]["needle_token_offset"] += 1  # its tail would still be in the window
    assert beyond_window(rec, SINKS, WINDOW) is False
    assert beyond_window({"prompt_tokens": 8192, "extra": {"needle_token_offset": 5}}, SINKS, WINDOW) is False  # a sink
    assert answer_offset({"prompt_tokens": 1000, "extra": {"needle_depth": 0.25}}) == 250
    assert answer_offset({"prompt_tokens": 1000, "extra": {"depth": 25}}) == 250  # a percentage
    assert beyond_window({"prompt_tokens": 8192, "extra": {}}, SINKS, WINDOW) is None
    # the real-text tasks' own distance from the end wins over the templated prompt's length
    rt = {"prompt_tokens": 8230, "extra": {"needle_token_offset": 4000, "needle_tokens_from_end": WINDOW + NEEDLE_SPAN}}
    assert beyond_window(rt, SINKS, WINDOW) is True
    rt["extra"]["needle_tokens_from_end"] -= 1
    assert beyond_window(rt, SINKS, WINDOW) is False


@pytest.mark.parametrize("depth", [False, True])
def test_every_claim_holds_on_a_world_that_shows_them(depth):
    claims = check_real_claims(_world(depth=depth), n_boot=200)
    assert all(c.holds for c in claims), [c for c in claims if not c.holds]
    beat = _by_name(claims)["ahn-gdn-coder beats swa-coder beyond the window"]
    assert beat.numbers["share"] == 1.0 and beat.numbers["swa_share"] == 0.0 and beat.numbers["ci"][0] > 0
    assert {"ct-max-coder lands at or below the AHNs beyond the window", "ahn-gdn-coder's cache stays flat",
            "full-coder's cost grows with the length"} <= set(_by_name(claims))


def test_each_claim_fails_with_its_evidence():
    c = _by_name(check_real_claims(_world(ahn=_inside), n_boot=200))
    assert not c["ahn-gdn-coder beats swa-coder beyond the window"].holds
    assert c["ahn-gdn-coder beats swa-coder beyond the window"].numbers["difference"] == 0.0
    c = _by_name(check_real_claims(_world(ahn=lambda r: 0.5 if beyond_window(r, SINKS, WINDOW) else 1.0,
                                          ct=lambda r: 1.0), n_boot=200))
    ct = c["ct-max-coder lands at or below the AHNs beyond the window"]
    assert not ct.holds and ct.numbers["share"] == 1.0 and ct.numbers["weakest_ahn"] == 0.5
    c = _by_name(check_real_claims(_world(ahn_cache=lambda t: 1000 * t), n_boot=200))
    assert not c["ahn-gdn-coder's cache stays flat"].holds
    c = _by_name(check_real_claims(_world(full_flops=lambda t: 1e12), n_boot=200))
    assert not c["full-coder's cost grows with the length"].holds


def test_missing_runs_are_named():
    with pytest.raises(ValueError, match="missing: full"):
        check_real_claims(_world()[1:], n_boot=50)


def test_script_writes_the_table_and_exits_by_the_claims(tmp_path):
    from harness.store import RunStore
    from studies import check_coder_claims

    root = tmp_path / "runs"
    for run in _world():
        with RunStore.create_or_resume(root / run.label, {"label": run.label, **run.manifest}) as store:
            for rec in run.records:
                store.append(rec)
    rc = check_coder_claims.main([str(root)])
    md = (tmp_path / "claims.md").read_text()
    assert rc == 0 and "| ahn-gdn-coder beats swa-coder beyond the window | yes |" in md
    assert "100% [100%, 100%]" in md and "8k (n=" in md
    assert json.loads((tmp_path / "claims.json").read_text())["claims"]
    assert check_coder_claims.main([str(tmp_path / "nothing")]) == 2
