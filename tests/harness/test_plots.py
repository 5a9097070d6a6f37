"""Plots: every figure is written, as a real PNG and a real SVG, for a few synthetic runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.plots import _pareto, plot_runs
from harness.provenance import make_manifest
from harness.store import RunStore

# A 3B-like shape for the paper's analytic formulas (docs/COSTS.md): cache = 4 bytes x elements.
LAYERS, D, NQ, NKV, H, SINKS_WINDOW = 36, 2048, 16, 2, 128, 8192
LEVELS = {"16k": 16_000, "32k": 32_000, "64k": 64_000, "128k": 128_000, "256k": 256_000}


def _costs(method: str, n: int) -> dict[str, float]:
    w = min(n, SINKS_WINDOW) if method != "full" else n
    proj = 4 * n * D * H * (NQ + NKV)
    if method == "full":
        flops = proj + 2 * H * NQ * n * n
    else:
        flops = proj + 2 * H * NQ * w * w + 2 * (n - w) * (2 * w * H * NQ)
        if method == "ahn":
            flops += 2 * (n - w) * (2 * H * H * NQ + 3 * D * NQ)
    cache = 4 * LAYERS * 2 * w * H * NKV + (4 * LAYERS * H * H * NQ if method == "ahn" else 0)
    return {
        "flops_paper": LAYERS * flops,
        "flops_actual": LAYERS * flops * 1.05,
        "cache_bytes_paper": cache,
        "cache_bytes_actual": cache // 2,  # bf16 storage
        "cache_bytes_measured": cache // 2 + 4096,
    }


def make_run(path: Path, method: str, quality: list[float], n_per: int = 12, seed: int = 0) -> Path:
    """A synthetic LV-Eval-like run: two tasks x five levels, scores drawn around ``quality`` per level."""
    rng = np.random.default_rng(seed)
    manifest = make_manifest({"preset": method, "method": {"name": method}}, argv=["test"])
    with RunStore.create_or_resume(path, manifest) as store:
        for task in ("lveval/factrecall_en", "lveval/loogle_SD_mixup"):
            for (level, words), q in zip(LEVELS.items(), quality):
                for i in range(n_per):
                    before = int(words * rng.uniform(1.2, 1.5))
                    fed = min(before, 128_000)
                    store.append({
                        "key": f"{task}|{level}|{i}", "task": task, "level": level, "id": str(i),
                        "bucket": level, "prompt_tokens_before": before, "prompt_tokens": fed,
                        "truncated": fed < before, "prediction": "x",
                        "score": float(np.clip(q + rng.normal(0, 0.15), 0, 1)), "status": "ok",
                        "error": None, "n_generated": 16, "prefill_s": fed / 20_000, "decode_s": 0.4,
                        "peak_mem_bytes": 6e9 + _costs(method, fed)["cache_bytes_actual"],
                        **_costs(method, fed),
                    })
    return path


def synthetic_runs(root: Path) -> list[Path]:
    return [
        make_run(root / "full", "full", [0.62, 0.55, 0.45, 0.35, 0.2], seed=1),
        make_run(root / "swa", "swa", [0.45, 0.33, 0.22, 0.15, 0.1], seed=2),
        make_run(root / "ahn", "ahn-gdn", [0.55, 0.48, 0.4, 0.33, 0.25], seed=3),
    ]


def test_plot_runs_writes_real_png_and_svg(tmp_path: Path) -> None:
    runs = synthetic_runs(tmp_path / "runs")
    paths = plot_runs(runs, tmp_path / "fig")
    names = sorted(p.name for p in paths)
    expected = sorted(f"{s}.{e}" for s in ("score_by_length", "cost_vs_length", "score_vs_cost") for e in ("png", "svg"))
    assert names == expected
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 5_000, p
        if p.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert b"<svg" in data[:2000]
    # every method's label is drawn (SVG keeps text as glyph references, so check the PNG sizes differ
    # from an empty plot instead): a single run still plots
    single = plot_runs(runs[:1], tmp_path / "one")
    assert all(p.stat().st_size > 3_000 for p in single)


def test_plot_runs_without_costs(tmp_path: Path) -> None:
    """Runs that recorded no FLOPs/bytes still get every figure (with a note instead of an empty axis)."""
    path = tmp_path / "bare"
    with RunStore.create_or_resume(path, make_manifest({"method": "full"}, argv=["t"])) as store:
        for i in range(6):
            store.append({"key": f"synthetic/passkey|None|{i}", "task": "synthetic/passkey", "level": None,
                          "prompt_tokens_before": 1000 * (i + 1) * 3, "score": float(i % 2), "status": "ok"})
    assert len(plot_runs([path], tmp_path / "fig")) == 6


def test_pareto_front() -> None:
    # (cost, score): (2, 50) is beaten by (1, 60); (3, 70) costs more but scores more
    assert _pareto([(1, 60), (2, 50), (3, 70)]) == [(1, 60), (3, 70)]


def test_score_vs_cost_compares_on_shared_tasks(tmp_path: Path) -> None:
    """A run that also scored an easy extra task must not look better for it on the Pareto plot."""
    from harness.plots import _load, _overall_rows

    def run(path: Path, tasks: dict[str, float]) -> Path:
        with RunStore.create_or_resume(path, make_manifest({"preset": path.name}, argv=["t"])) as store:
            for task, score in tasks.items():
                for i in range(4):
                    store.append({"key": f"{task}|16k|{i}", "task": task, "level": "16k", "score": score})
        return path

    a = run(tmp_path / "a", {"lveval/x": 0.5})
    b = run(tmp_path / "b", {"lveval/x": 0.4, "lveval/easy": 1.0})
    rows, note = _overall_rows(_load([a, b]))
    assert rows["a"]["score"] == 50.0 and rows["b"]["score"] == 40.0  # not (40 + 100) / 2
    assert note == "on the 1 task(s) every run scored"


ROOT = Path(__file__).resolve().parents[2]
COMMITTED_JOBS = [p for p in (ROOT / "leaderboards" / "tiny" / "default-run", ROOT / "leaderboards" / "tiny" / "claims-run")
                  if p.is_dir()]


def _job(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "manifest.json").exists())


def _crowded_runs(root: Path) -> list[Path]:
    """Seven methods whose scores and costs nearly coincide: the hardest case for labels."""
    names = ["full", "swa", "ct-max", "ct-avg", "ahn-mamba2", "ahn-dn", "ahn-gdn"]
    return [make_run(root / n, n, [0.5, 0.45, 0.4, 0.35, 0.3], n_per=6, seed=i) for i, n in enumerate(names)]


def _figures(runs):
    from harness.plots import _load, cost_vs_length_figure, score_by_length_figure, score_vs_cost_figure

    methods = _load(runs)
    return methods, {"score_by_length": score_by_length_figure(methods),
                     "cost_vs_length": cost_vs_length_figure(methods),
                     "score_vs_cost": score_vs_cost_figure(methods)}


def _boxes(fig, artists):
    """Drawn boxes; a label's is its text's alone (an annotation's own extent also spans its leader line)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    return [Text.get_window_extent(a, renderer) if isinstance(a, Text) else a.get_window_extent(renderer)
            for a in artists]


def _disjoint(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


def _label_cases(tmp_path: Path) -> list[tuple[str, list[Path]]]:
    return [(p.name, _job(p)) for p in COMMITTED_JOBS] + [("crowded", _crowded_runs(tmp_path / "crowded"))]


def test_score_vs_cost_labels_overlap_nothing(tmp_path: Path) -> None:
    """Label boxes on the drawn figure: disjoint from each other, inside their axes, clear of every marker;
    every method is named (methods at one spot share a label)."""
    from harness.plots import LABEL_GID

    for name, runs in _label_cases(tmp_path):
        methods, figs = _figures(runs)
        fig = figs["score_vs_cost"]
        for ax in fig.axes:
            texts = [t for t in ax.texts if t.get_gid() == LABEL_GID]
            if not texts:
                continue
            boxes = _boxes(fig, texts)
            assert _disjoint(boxes) == [], (name, [t.get_text() for t in texts])
            frame = ax.get_window_extent(fig.canvas.get_renderer())
            assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
            marker_centres = [ax.transData.transform(xy) for line in ax.lines for xy in line.get_xydata()
                              if line.get_marker() not in (None, "None", "")]
            for b in boxes:
                assert not any(b.x0 < x < b.x1 and b.y0 < y < b.y1 for x, y in marker_centres), name
            named = "\n".join(t.get_text() for t in texts).split("\n")
            assert sorted(named) == sorted(m.label for m in methods), name


def test_tick_labels_do_not_overlap_and_log_axes_carry_four(tmp_path: Path) -> None:
    from harness.plots import MIN_LOG_TICKS

    for name, runs in _label_cases(tmp_path):
        _, figs = _figures(runs)
        for stem, fig in figs.items():
            for ax in fig.axes:
                if not ax.get_visible():
                    continue
                for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
                    labels = [t for t in axis.get_ticklabels() if t.get_text() and t.get_visible()]
                    lo, hi = min(lim), max(lim)
                    inside = [t for t, v in zip(axis.get_ticklabels(), axis.get_ticklocs()) if lo <= v <= hi
                              and t.get_text()]
                    if axis.get_scale() == "log":
                        assert len(inside) >= MIN_LOG_TICKS, (name, stem, [t.get_text() for t in inside])
                    assert _disjoint(_boxes(fig, labels)) == [], (name, stem, [t.get_text() for t in labels])


def test_a_method_keeps_its_colour_and_marker_in_any_order_and_figure(tmp_path: Path) -> None:
    from harness.style import STYLES

    runs = synthetic_runs(tmp_path / "runs")
    forward, figs = _figures(runs)
    backward, _ = _figures(list(reversed(runs)))
    assert [(m.label, m.style) for m in forward] == [(m.label, m.style) for m in backward]
    assert {m.label: (m.color, m.style.marker) for m in forward} == {
        "full": (STYLES["full"].color, STYLES["full"].marker), "swa": (STYLES["swa"].color, STYLES["swa"].marker),
        "ahn-gdn": (STYLES["ahn-gdn"].color, STYLES["ahn-gdn"].marker)}
    assert len({s.color for s in STYLES.values()}) == len({s.marker for s in STYLES.values()}) == len(STYLES)
    for stem, fig in figs.items():  # the legend of every figure shows the same colour and marker per method
        handles = {t.get_text(): h for h, t in zip(fig.legends[0].legend_handles, fig.legends[0].get_texts())}
        for m in forward:
            assert handles[m.label].get_color() == m.color and handles[m.label].get_marker() == m.style.marker, stem


def test_score_by_length_draws_cis_as_error_bars_and_keeps_equal_scores_apart(tmp_path: Path) -> None:
    """Buckets are categories: no band interpolated between them; methods with the very same scores are drawn
    side by side, each with its own marker."""
    from matplotlib.collections import LineCollection, PolyCollection

    runs = [make_run(tmp_path / name, name, [0.5, 0.4, 0.3, 0.2, 0.1], seed=7) for name in ("swa", "ct-max")]
    _, figs = _figures(runs)
    ax = figs["score_by_length"].axes[0]
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert [c for c in ax.collections if isinstance(c, LineCollection)]  # the error bars
    lines = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("method:")]
    assert len(lines) == 2 and lines[0].get_marker() != lines[1].get_marker()
    (x0, y0), (x1, y1) = (ln.get_xydata()[0] for ln in lines)
    assert y0 == y1 and x0 != x1


def test_the_overlap_check_sees_labels_placed_naively(tmp_path: Path, monkeypatch) -> None:
    """Negative control: the crowded case with every label at one fixed offset (the old placement) overlaps."""
    from harness import plots

    def naive(ax, points, obstacles=None):
        return [ax.annotate("\n".join(m.label for m in ms), (x, y), xytext=(7, 7), textcoords="offset points",
                            fontsize=8.5, gid=plots.LABEL_GID) for x, y, ms in points]

    monkeypatch.setattr(plots, "place_labels", naive)
    _, figs = _figures(_crowded_runs(tmp_path / "crowded"))
    fig = figs["score_vs_cost"]
    texts = [t for t in fig.axes[0].texts if t.get_gid() == plots.LABEL_GID]
    assert _disjoint(_boxes(fig, texts))


def test_a_buckets_methods_share_a_compact_dodge(tmp_path: Path) -> None:
    """Seven methods take at most DODGE_SPAN of the gap between buckets, evenly, centred on the bucket."""
    from harness.plots import DODGE_SPAN, dodge_offsets

    offsets = dodge_offsets(7)
    assert offsets.max() - offsets.min() == pytest.approx(DODGE_SPAN) and DODGE_SPAN <= 0.45
    assert np.allclose(np.diff(offsets), offsets[1] - offsets[0]) and offsets.mean() == pytest.approx(0.0)
    assert list(dodge_offsets(1)) == [0.0] and np.ptp(dodge_offsets(2)) <= DODGE_SPAN
    from harness.plots import _load, score_by_length_figure

    ax = score_by_length_figure(_load(_crowded_runs(tmp_path / "crowded"))).axes[0]
    first = [ln.get_xydata()[0][0] for ln in ax.lines if (ln.get_gid() or "").startswith("method:")]
    assert len(first) == 7 and max(first) - min(first) <= DODGE_SPAN + 1e-9  # bucket 0 sits at x = 0


def test_score_axes_fit_the_intervals_with_room_at_0_and_100() -> None:
    from harness.plots import score_limits

    lo, hi = score_limits([0.0, 40.0], [60.0, 100.0])
    assert lo < 0.0 < 100.0 < hi < 106.0  # caps at 0 and 100 drawn inside the axes, never out to 110
    lo, hi = score_limits([62.0], [80.0])  # data far from 0: the axis starts near them (a step of 10 below)
    assert (lo, hi) == pytest.approx((48.0, 102.0))
    lo, hi = score_limits([20.0], [45.0])  # data far from 100: the axis ends near them
    assert (lo, hi) == pytest.approx((-2.0, 52.0))


def test_the_cost_panel_sets_each_method_apart_as_a_ratio_to_full_attention(tmp_path: Path) -> None:
    """The bottom panels: full attention at 1, each method on its own row at its ratio in the longest bucket,
    computed here from the records by hand."""
    from harness.plots import _load, cost_vs_length_figure, relative_costs

    runs = _crowded_runs(tmp_path / "crowded")
    methods = _load(runs)
    field, bucket, values, ratio = relative_costs(methods, ("cache_bytes_measured",))
    assert (field, bucket, ratio) == ("cache_bytes_measured", "256k", True)

    def mean_at(run: Path, level: str) -> float:
        lines = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines() if x.strip()]
        return float(np.mean([r["cache_bytes_measured"] for r in lines if r["level"] == level]))

    full = mean_at(runs[0], "256k")
    for run in runs:
        assert values[run.name] == pytest.approx(mean_at(run, "256k") / full, rel=1e-12)
    assert values["full"] == 1.0 and values["swa"] < 0.1
    bottom = [ax for ax in cost_vs_length_figure(methods).axes if ax.get_title().startswith("Cache at")]
    (ax,) = bottom
    rows = {ln.get_gid(): ln.get_xydata()[0] for ln in ax.lines if (ln.get_gid() or "").startswith("cost:")}
    assert len({y for _, y in rows.values()}) == len(methods)  # one row each: no two methods drawn over each other
    assert ax.get_xscale() == "log"


def test_the_same_runs_give_byte_identical_figures(tmp_path: Path) -> None:
    """No date and no random element ids in an SVG: regenerating a committed figure changes nothing."""
    runs = [make_run(tmp_path / m, m, [0.6, 0.5, 0.4, 0.3, 0.2], n_per=2, seed=i)
            for i, m in enumerate(("full", "swa"))]
    first = plot_runs(runs, tmp_path / "a")
    second = plot_runs(runs, tmp_path / "b")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert b"<dc:date>" not in first[1].read_bytes()
