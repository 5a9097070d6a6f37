"""The qualitative-claims checker: the needle geometry, each claim holding and failing on constructed runs, and
the committed tiny-world comparison run."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.store import Run
from studies.claims import NEEDLE_SPAN, check_claims, needle_outside, write_claims

SINKS, WINDOW = 32, 480
BUCKETS = {"512": 510, "1k": 1024, "2k": 2048, "4k": 4096}
REPO = Path(__file__).resolve().parents[2]


def _records(score_fn, cache_fn, n: int = 12) -> list[dict]:
    out = []
    for bucket, tokens in BUCKETS.items():
        for i in range(n):
            offset = 150 + (tokens - 300) * i // n  # needles spread over the prompt
            rec = {"key": f"t|{bucket}|{i}", "bucket": bucket, "prompt_tokens": tokens, "status": "ok",
                   "extra": {"needle_token_offset": offset}, "cache_bytes_measured": cache_fn(tokens)}
            rec["score"] = score_fn(rec)
            out.append(rec)
    return out


def _run(method: str, score_fn, cache_fn=lambda t: 2_000_000) -> Run:
    cfg = {"method": method} if method == "full" else {"method": method, "sinks": SINKS, "window": WINDOW}
    return Run(manifest={"label": f"tiny-{method}", "config": {"method": cfg}}, records=_records(score_fn, cache_fn))


def _inside(rec) -> float:
    return 0.0 if needle_outside(rec, SINKS, WINDOW) else 1.0


def _world(ahn=lambda r: 1.0, ct=_inside, ahn_cache=lambda t: 2_100_000):
    return [_run("full", lambda r: 1.0, lambda t: 4096 * t), _run("swa", _inside), _run("ct-max", ct),
            _run("ahn-gdn", ahn, ahn_cache)]


def _by_name(claims):
    return {c.name: c for c in claims}


def test_needle_geometry():
    rec = {"prompt_tokens": 2048, "extra": {"needle_token_offset": 2048 - WINDOW - NEEDLE_SPAN}}
    assert needle_outside(rec, SINKS, WINDOW) is True
    rec["extra"]["needle_token_offset"] += 1  # its tail would still be in the window
    assert needle_outside(rec, SINKS, WINDOW) is False
    assert needle_outside({"prompt_tokens": 2048, "extra": {"needle_token_offset": 10}}, SINKS, WINDOW) is False
    assert needle_outside({"prompt_tokens": 2048, "extra": {}}, SINKS, WINDOW) is None


def test_every_claim_holds_on_a_world_that_shows_them():
    claims = check_claims(_world(), training_length=4096, n_boot=200)
    assert all(c.holds for c in claims), [c for c in claims if not c.holds]
    beat = _by_name(claims)["tiny-ahn-gdn beats tiny-swa outside the window"]
    assert beat.numbers["accuracy"] == 1.0 and beat.numbers["swa_accuracy"] == 0.0 and beat.numbers["ci"][0] > 0
    assert {"tiny-full's cache grows linearly", "tiny-swa's cache stays flat", "tiny-ct-max lands in between or below",
            "tiny-full is near-perfect within its training length"} <= set(_by_name(claims))


def test_an_ahn_no_better_than_swa_fails():
    claims = _by_name(check_claims(_world(ahn=_inside), training_length=4096, n_boot=200))
    c = claims["tiny-ahn-gdn beats tiny-swa outside the window"]
    assert not c.holds and c.numbers["difference"] == 0.0


def test_a_margin_inside_the_ci_fails():
    # one extra sample right out of ~30 beyond the window: the paired CI reaches zero
    first = {"done": False}

    def one_better(rec):
        if needle_outside(rec, SINKS, WINDOW) and not first["done"]:
            first["done"] = True
            return 1.0
        return _inside(rec)

    c = _by_name(check_claims(_world(ahn=one_better), training_length=4096, n_boot=500))[
        "tiny-ahn-gdn beats tiny-swa outside the window"]
    assert c.numbers["difference"] > 0 and c.numbers["ci"][0] <= 0 and not c.holds


def test_ct_above_the_ahn_and_a_growing_bounded_cache_fail():
    claims = _by_name(check_claims(_world(ahn=lambda r: 0.5 if needle_outside(r, SINKS, WINDOW) else 1.0,
                                          ct=lambda r: 1.0, ahn_cache=lambda t: 1000 * t),
                                   training_length=4096, n_boot=200))
    assert not claims["tiny-ct-max lands in between or below"].holds
    assert not claims["tiny-ahn-gdn's cache stays flat"].holds
    assert claims["tiny-ahn-gdn beats tiny-swa outside the window"].holds


def test_full_attention_must_be_near_perfect_within_training_length():
    runs = _world()
    runs[0] = _run("full", lambda r: 0.0 if r["bucket"] == "4k" else 1.0, lambda t: 4096 * t)
    claims = _by_name(check_claims(runs, training_length=4096, n_boot=200))
    assert not claims["tiny-full is near-perfect within its training length"].holds
    assert _by_name(check_claims(runs, training_length=2048, n_boot=200))[
        "tiny-full is near-perfect within its training length"].holds


def test_missing_methods_are_named():
    with pytest.raises(ValueError, match="missing: swa"):
        check_claims([r for r in _world() if r.label != "tiny-swa"], training_length=4096)


def test_committed_tiny_world_run_shows_the_claims(tmp_path):
    root = REPO / "leaderboards" / "tiny" / "claims-run"
    runs = sorted(p for p in root.glob("*") if (p / "manifest.json").exists())
    if not runs:
        pytest.skip("no committed claims-run")
    claims = write_claims(runs, tmp_path / "claims", training_length=4096)
    assert sum(c.name.endswith("outside the window") for c in claims) == 3  # the three AHN cells
    assert all(c.holds for c in claims), [f"{c.name}: {c.detail}" for c in claims if not c.holds]
    assert (tmp_path / "claims.md").read_text().count("| yes |") == len(claims)


def test_written_report_links_its_plot(tmp_path):
    import json

    runs = []
    for run in _world():
        d = tmp_path / "runs" / run.label
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps(run.manifest))
        (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in run.records))
        runs.append(d)
    claims = write_claims(runs, tmp_path / "claims", training_length=4096)
    md = (tmp_path / "claims.md").read_text()
    assert all(c.holds for c in claims) and "![accuracy beyond the window](claims_beyond_window.png)" in md
    assert (tmp_path / "claims_beyond_window.png").stat().st_size > 10_000
    assert "| tiny-ahn-gdn | 100% | 100% | 100% |" in md and "| tiny-swa | 0% | 0% | 0% |" in md
