"""Summaries: means, bootstrap CIs, aggregation conventions and cost columns on hand-made records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.provenance import make_manifest
from harness.store import RunStore
from harness.summary import bootstrap_ci, format_table, si, summarize, write_summary


def r(task: str, level: str | None, i: int, score: float | None, status: str = "ok", **extra: object) -> dict:
    return {"key": f"{task}|{level}|{i}", "task": task, "level": level, "id": str(i), "score": score,
            "status": status, **extra}


def row(rows: list[dict], task: str, bucket: str) -> dict:
    (found,) = [x for x in rows if x["task"] == task and x["bucket"] == bucket]
    return found


def test_cell_mean_ci_and_failed_samples() -> None:
    recs = [r("lveval/a", "16k", i, s, prefill_s=p, decode_s=d, n_generated=g, prompt_tokens_before=t,
              prompt_tokens=t, flops_paper=f, cache_bytes_measured=c, peak_mem_bytes=m)
            for i, (s, p, d, g, t, f, c, m) in enumerate([
                (1.0, 1.0, 2.0, 10, 100, 1e12, 1e9, 5e9),
                (0.0, 2.0, 1.0, 30, 300, 3e12, 2e9, 7e9),
                (1.0, 6.0, 1.0, 0, 200, 2e12, 3e9, 6e9),
                (0.5, 3.0, 4.0, 40, 400, 4e12, 4e9, 8e9),
            ])]
    # failures carry costs that must not leak into the means
    recs += [r("lveval/a", "16k", 10 + i, None, status="failed", prefill_s=999.0, flops_paper=1e20) for i in range(2)]
    recs.append(r("lveval/a", "16k", 20, 0.9, status="failed"))  # a failed status wins over a score
    c = row(summarize(recs), "lveval/a", "16k")
    assert c["n"] == 4 and c["n_failed"] == 3
    assert c["score"] == pytest.approx(62.5)  # (100 + 0 + 100 + 50) / 4
    assert c["ci_low"] <= c["score"] <= c["ci_high"]
    assert 0.0 <= c["ci_low"] and c["ci_high"] <= 100.0
    assert c["prefill_s_mean"] == pytest.approx(3.0) and c["prefill_s_median"] == pytest.approx(2.5)
    assert c["decode_s_per_token"] == pytest.approx((2 + 1 + 4) / (10 + 30 + 40))  # n_generated=0 ignored
    assert c["prompt_tokens_before"] == pytest.approx(250)
    assert c["flops_paper"] == pytest.approx(2.5e12) and c["cache_bytes_measured"] == pytest.approx(2.5e9)
    assert c["peak_mem_bytes_max"] == 8e9 and c["flops_actual"] is None


def test_constant_bucket_has_zero_width_ci() -> None:
    recs = [r("synthetic/passkey", "8k", i, 0.7) for i in range(25)]
    c = row(summarize(recs), "synthetic/passkey", "8k")
    assert c["score"] == pytest.approx(70.0)
    assert c["ci_low"] == c["ci_high"] == pytest.approx(70.0)
    one = row(summarize([r("t/x", "1k", 0, 0.3)]), "t/x", "1k")
    assert one["ci_low"] == one["ci_high"] == pytest.approx(30.0)


def test_ci_narrows_with_n_and_matches_normal_approximation() -> None:
    rng = np.random.default_rng(7)
    widths = []
    for n in (20, 80, 320):
        scores = rng.uniform(0, 1, n)
        c = row(summarize([r("t/x", "4k", i, float(s)) for i, s in enumerate(scores)]), "t/x", "4k")
        widths.append(c["ci_high"] - c["ci_low"])
        # independent reference: the normal-approximation interval, mean ± 1.96 sd / sqrt(n)
        half = 1.96 * 100 * scores.std(ddof=1) / np.sqrt(n)
        assert c["ci_low"] == pytest.approx(100 * scores.mean() - half, abs=0.25 * half)
        assert c["ci_high"] == pytest.approx(100 * scores.mean() + half, abs=0.25 * half)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4.0, rel=0.3)  # width ~ 1/sqrt(n)


def test_bootstrap_against_a_plain_loop() -> None:
    """The vectorised, chunked bootstrap equals a textbook loop with the same random draws."""
    x = np.array([0.0, 1.0, 1.0, 0.5, 0.25, 1.0, 0.0])
    lo, hi = bootstrap_ci([x], n_boot=500, seed=3)
    rng = np.random.default_rng(3)
    means = [x[rng.integers(0, len(x), len(x))].mean() for _ in range(500)]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert bootstrap_ci([], n_boot=10) is None and bootstrap_ci([np.array([])]) is None
    assert bootstrap_ci([x], seed=1) == bootstrap_ci([x], seed=1)  # seeded, reproducible


def test_lveval_convention_levels_are_unweighted_means_of_datasets() -> None:
    recs = [r("lveval/a", "16k", i, 1.0 if i < 8 else 0.0) for i in range(10)]  # 80
    recs += [r("lveval/b", "16k", i, 0.2) for i in range(2)]  # 20
    recs += [r("lveval/a", "32k", i, 0.5) for i in range(10)]  # 50
    recs += [r("lveval/b", "32k", i, 0.1) for i in range(4)]  # 10
    recs += [r("infinitebench/passkey", None, i, 1.0, prompt_tokens_before=100_000) for i in range(3)]
    rows = summarize(recs)
    lv16 = row(rows, "lveval/*", "16k")
    assert lv16["scope"] == "family-bucket" and lv16["n_tasks"] == 2 and lv16["n"] == 12
    assert lv16["score"] == pytest.approx(50.0)  # (80 + 20) / 2, not the pooled 70
    assert lv16["score_pooled"] == pytest.approx(100 * (8 + 0.4) / 12)
    assert lv16["ci_low"] <= 50.0 <= lv16["ci_high"]
    assert row(rows, "lveval/*", "32k")["score"] == pytest.approx(30.0)
    # a task's own score is over its samples (equal to the mean of levels when levels are complete)
    assert row(rows, "lveval/a", "all")["score"] == pytest.approx(65.0)
    assert row(rows, "lveval/b", "all")["score"] == pytest.approx(100 * (0.4 + 0.4) / 6)
    # the family: unweighted over datasets; overall: unweighted over all tasks
    b_all = 100 * 0.8 / 6
    assert row(rows, "lveval/*", "all")["score"] == pytest.approx((65.0 + b_all) / 2)
    assert row(rows, "all", "all")["score"] == pytest.approx((65.0 + b_all + 100.0) / 3)
    # a task without levels is bucketed by its pre-truncation length
    assert row(rows, "infinitebench/passkey", "64k-128k")["n"] == 3
    # buckets in length order within a task, then its total
    a_rows = [x["bucket"] for x in rows if x["task"] == "lveval/a"]
    assert a_rows == ["16k", "32k", "all"]


def test_ci_does_not_depend_on_other_rows() -> None:
    base = [r("t/x", "4k", i, float(i % 3) / 2) for i in range(30)]
    more = base + [r("t/y", "4k", i, 0.5) for i in range(5)]
    assert row(summarize(base), "t/x", "4k")["ci_low"] == row(summarize(more), "t/x", "4k")["ci_low"]


def test_write_summary_and_table(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.create_or_resume(run, make_manifest({"preset": "swa-3b"}, argv=["x"])) as store:
        for i in range(6):
            store.append(r("lveval/a", "16k", i, i / 5, flops_paper=1.19e16, cache_bytes_paper=1.93e10))
        store.append(r("lveval/a", "16k", 9, None, status="failed", error="OOM"))
    json_path, md_path = write_summary(run)
    doc = json.loads(json_path.read_text())
    assert doc["label"] == "swa-3b" and doc["n_samples"] == 7 and doc["n_failed"] == 1
    assert row(doc["rows"], "lveval/a", "16k")["score"] == pytest.approx(50.0)
    md = md_path.read_text()
    assert "# Summary: swa-3b" in md and "| lveval/a | 16k | 6 | 1 | 50.00 |" in md
    assert "11.9 P / –" in md and "19.3 GB" in md and "excluded from every mean" in md
    table = format_table(doc["rows"])
    # one-task family rows repeat the task's rows and are not shown; the overall row is
    assert "lveval/*" not in table and "| all | all |" in table
    assert si(1.93e10, "B") == "19.3 GB" and si(None) == "–" and si(512, "B") == "512 B"
