"""Intervals honest at small n: Wilson for binary metrics, the bootstrap for graded ones, n beside each.

References: the Wilson bounds are the roots of the quadratic (p̂ - p)² = z² p (1 - p) / n, solved here by the
quadratic formula (the product code uses the closed centre ± half-width form); for k = n the lower root is
n / (n + z²) by hand, 4 / (4 + 1.959964²) = 0.510086 for 4/4. scipy's Wilson interval is a second reference
where scipy is installed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.intervals import BOOTSTRAP, WILSON, declared_binary, stratified_wilson, wilson_interval
from harness.provenance import make_manifest
from harness.store import RunStore
from harness.summary import summarize, write_summary

Z95 = 1.959963984540054  # the 97.5% standard normal quantile (tables: 1.96)
FOUR_OF_FOUR_LOW = 100 * 4 / (4 + Z95**2)  # 51.0086...


def wilson_by_quadratic(k: int, n: float, z: float = Z95) -> tuple[float, float]:
    p = k / n
    a, b, c = 1 + z * z / n, -(2 * p + z * z / n), p * p
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


@pytest.mark.parametrize("k,n", [(4, 4), (0, 4), (2, 4), (1, 10), (37, 50), (0, 1), (999, 1000)])
def test_wilson_equals_the_roots_of_its_quadratic(k: int, n: int) -> None:
    lo, hi = wilson_interval(k / n, n)
    ref_lo, ref_hi = wilson_by_quadratic(k, n)
    assert lo == pytest.approx(max(0.0, ref_lo), abs=1e-12) and hi == pytest.approx(min(1.0, ref_hi), abs=1e-12)


def test_four_of_four_by_hand_and_against_scipy() -> None:
    lo, hi = wilson_interval(1.0, 4)
    assert 100 * lo == pytest.approx(FOUR_OF_FOUR_LOW, abs=1e-9) and hi == 1.0
    assert round(100 * lo, 1) == 51.0
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((4, 4), (3, 7), (0, 5), (12, 40)):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k / n, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_rejects_impossible_inputs() -> None:
    with pytest.raises(ValueError, match="n > 0"):
        wilson_interval(0.5, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        wilson_interval(1.5, 4)
    with pytest.raises(ValueError, match="level"):
        wilson_interval(0.5, 4, level=1.0)


def test_a_mean_over_binary_tasks_uses_kish_effective_n() -> None:
    a, b = np.array([1.0, 1.0, 0.0, 1.0]), np.array([1.0] * 6 + [0.0] * 2)  # 3/4 and 6/8
    n_eff = 1.0 / (0.25 * (1 / 4 + 1 / 8))  # 1 / sum (1/k)^2 / n_i with k = 2 tasks: 10.667
    p = (0.75 + 0.75) / 2  # the quadratic again, with the non-integer n_eff
    aa, bb, cc = 1 + Z95**2 / n_eff, -(2 * p + Z95**2 / n_eff), p * p
    disc = math.sqrt(bb * bb - 4 * aa * cc)
    ref = ((-bb - disc) / (2 * aa), (-bb + disc) / (2 * aa))
    assert stratified_wilson([a, b]) == pytest.approx(ref, abs=1e-12)
    # one task: the plain interval; equal counts: the pooled one
    assert stratified_wilson([a]) == pytest.approx(wilson_interval(0.75, 4), abs=1e-12)
    assert stratified_wilson([a, a]) == pytest.approx(wilson_interval(0.75, 8), abs=1e-12)
    assert stratified_wilson([[], []]) is None


def test_families_declare_which_metrics_are_binary() -> None:
    assert declared_binary("infinitebench/passkey") is True
    assert declared_binary("synthetic/passkey") is True and declared_binary("synthetic/niah_single") is True
    assert declared_binary("infinitebench/math_calc") is False  # a correct-prefix ratio
    assert declared_binary("infinitebench/longbook_qa_eng") is False
    assert declared_binary("synthetic/niah_multikey") is False  # fraction of the needles found
    assert declared_binary("lveval/factrecall_en") is False and declared_binary("longbench/hotpotqa") is False
    assert declared_binary("ahn-paper/lveval/factrecall_en") is False  # an alias scores like its target
    assert declared_binary("custom/unknown") is None


def _rec(task: str, i: int, score: float, level: str = "2k") -> dict:
    return {"key": f"{task}|{level}|{i}", "task": task, "level": level, "id": str(i), "score": score,
            "status": "ok"}


def _cell(rows: list[dict], task: str, bucket: str) -> dict:
    (row,) = [r for r in rows if r["task"] == task and r["bucket"] == bucket]
    return row


def test_the_interval_follows_the_metric_kind() -> None:
    recs = [_rec("synthetic/passkey", i, 1.0) for i in range(4)]  # binary, declared
    recs += [_rec("lveval/factrecall_en", i, 1.0) for i in range(4)]  # graded, declared (F1 that hit 1.0)
    recs += [_rec("custom/yesno", i, float(i % 2)) for i in range(4)]  # undeclared, values 0/1
    recs += [_rec("custom/graded", i, 0.25 * i) for i in range(4)]  # undeclared, graded values
    rows = summarize(recs)
    passkey = _cell(rows, "synthetic/passkey", "2k")
    assert passkey["ci_method"] == WILSON and passkey["n"] == 4
    assert passkey["ci_low"] == pytest.approx(FOUR_OF_FOUR_LOW) and passkey["ci_high"] == 100.0
    f1 = _cell(rows, "lveval/factrecall_en", "2k")
    assert f1["ci_method"] == BOOTSTRAP and f1["ci_low"] == f1["ci_high"] == 100.0
    yesno = _cell(rows, "custom/yesno", "2k")
    assert yesno["ci_method"] == WILSON
    assert (yesno["ci_low"], yesno["ci_high"]) == pytest.approx(tuple(100 * v for v in wilson_by_quadratic(2, 4)))
    assert _cell(rows, "custom/graded", "2k")["ci_method"] == BOOTSTRAP
    # a mean over tasks: Wilson only when every task in it is binary
    assert _cell(rows, "synthetic/*", "2k")["ci_method"] == WILSON
    assert _cell(rows, "custom/*", "2k")["ci_method"] == BOOTSTRAP
    assert _cell(rows, "all", "all")["ci_method"] == BOOTSTRAP


def _passkey_run(path: Path, preset: str, scores: list[float]) -> Path:
    with RunStore.create_or_resume(path, make_manifest({"preset": preset}, argv=["t"])) as store:
        for i, s in enumerate(scores):
            store.append(_rec("synthetic/passkey", i, s))
    return path


def test_four_of_four_shows_wilson_in_summary_md_and_json(tmp_path: Path) -> None:
    json_path, md_path = write_summary(_passkey_run(tmp_path / "run", "tiny-full", [1.0] * 4))
    doc = json.loads(json_path.read_text())
    row = _cell(doc["rows"], "synthetic/passkey", "2k")
    assert (row["ci_low"], row["ci_high"], row["n"], row["ci_method"]) == (
        pytest.approx(FOUR_OF_FOUR_LOW), 100.0, 4, "wilson")
    assert doc["score_scale"] == "x100"
    md = md_path.read_text()
    assert "| synthetic/passkey | 2k | 4 |  | 100.00 | [51.0, 100.0] (n=4, Wilson) |" in md
    assert "score (×100)" in md and "[100.0, 100.0]" not in md


def test_four_of_four_shows_wilson_in_report_md_and_figures(tmp_path: Path) -> None:
    from matplotlib.collections import LineCollection

    from harness.plots import _load, score_by_length_figure, score_vs_cost_figure
    from harness.report import write_report

    runs = [_passkey_run(tmp_path / "full", "tiny-full", [1.0] * 4),
            _passkey_run(tmp_path / "swa", "tiny-swa", [1.0, 0.0, 0.0, 0.0])]
    write_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| synthetic/passkey | 2k | 100.0 [51.0, 100.0] (n=4, Wilson) | 25.0 [4.6, 69.9] (n=4, Wilson) |" in md
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    got = data["intervals"]["synthetic/passkey|2k"]["tiny-full"]
    assert got["ci_low"] == pytest.approx(FOUR_OF_FOUR_LOW) and got["n"] == 4 and got["ci_method"] == "wilson"
    assert 100 * wilson_by_quadratic(1, 4)[0] == pytest.approx(4.56, abs=0.01)  # the 25.0 row's bounds
    # the figure data: the error bar of the 4/4 method spans the Wilson interval, and the axes show it whole
    methods = _load(runs)
    fig = score_by_length_figure(methods)
    ax = fig.axes[0]
    (bars,) = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_gid() == "ci:tiny-full"]
    (segment,) = bars.get_segments()
    assert sorted(segment[:, 1]) == pytest.approx([FOUR_OF_FOUR_LOW, 100.0])
    bottom, top = ax.get_ylim()
    assert bottom < 4.56 and 100.0 < top < 110.0  # both caps inside the axes, the axis not run to 110
    assert "n=4" in [t.get_text().split("\n")[-1] for t in ax.get_xticklabels()]
    assert "Wilson" in fig.get_suptitle()
    fig = score_vs_cost_figure(methods)
    assert "Wilson" in fig.get_suptitle() and "n=4" in fig.get_suptitle()


@pytest.mark.parametrize("n", [1, 3, 10, 37, 1000])
def test_wilson_bounds_are_exact_at_zero_and_one(n: int) -> None:
    # the quadratic's lower root at p = 0 is 0 and its upper root at p = 1 is 1 (c = 0, resp. a + b + c = 0);
    # float rounding of centre - half once gave 2.8e-15 at 0/10, a bound above the point estimate (and a
    # negative error bar that matplotlib refuses)
    assert wilson_interval(0.0, n)[0] == 0.0 and wilson_interval(1.0, n)[1] == 1.0
