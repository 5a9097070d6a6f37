"""Pictures of one or more runs, for a person to read at a glance.

Three figures, each written as PNG (for reading) and SVG (for papers and the web):

* ``score_by_length``: score per length bucket, one line per method, 95% CI band; one panel per benchmark
  family (LV-Eval levels and token bins do not share an axis).
* ``cost_vs_length``: FLOPs and cache bytes per sample against prompt length, log-log, per method; the
  paper's analytic convention solid, what the implementation computes/stores dashed, measured bytes as
  markers. Full attention's cache grows linearly, a bounded method's goes flat: visible at once.
* ``score_vs_cost``: mean score against mean cache bytes and against mean FLOPs per method, labelled points
  with CI bars and the Pareto front (up and to the left is better).

Figures are drawn on ``matplotlib.figure.Figure`` objects (Agg canvas), so plotting touches no global backend
or pyplot state and works headless.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter

from harness.buckets import sort_buckets
from harness.store import Run, load_run
from harness.summary import summarize

DPI = 160
FORMATS = ("png", "svg")
_BAND_ALPHA = 0.18


@dataclass
class _Method:
    label: str
    run: Run
    rows: list[dict[str, Any]]
    color: Any


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """Seaborn's clean grid style when available, applied only while drawing."""
    try:
        import seaborn as sns
    except ImportError:  # plain matplotlib still gives readable figures
        yield
        return
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.95):
        yield


def _palette(n: int) -> list[Any]:
    try:
        import seaborn as sns

        return list(sns.color_palette("colorblind", max(n, 3)))[:n]
    except ImportError:
        from matplotlib import colormaps

        return [colormaps["tab10"](i % 10) for i in range(n)]


def _load(run_dirs: Sequence[str | Path | Run]) -> list[_Method]:
    runs = [r if isinstance(r, Run) else load_run(r) for r in run_dirs]
    labels = [r.label for r in runs]
    # Two runs of the same method (e.g. before/after a change) get their folder name appended.
    final = [
        f"{lab} ({r.path.name})" if labels.count(lab) > 1 and r.path is not None else lab
        for lab, r in zip(labels, runs)
    ]
    colors = _palette(len(runs))
    return [_Method(lab, r, summarize(r.records), c) for lab, r, c in zip(final, runs, colors)]


def _tokens_fmt(x: float, _pos: Any = None) -> str:
    if x >= 2**20 and x % 2**20 == 0:
        return f"{x / 2**20:g}M"
    if x >= 1024:
        return f"{x / 1024:g}k"
    return f"{x:g}"


def _save(fig: Figure, out_dir: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    FigureCanvasAgg(fig)
    paths = []
    for ext in formats:
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
        paths.append(path)
    return paths


def _method_legend(fig: Figure, methods: list[_Method], extra: list[Line2D] | None = None) -> None:
    handles = [Line2D([], [], color=m.color, marker="o", lw=2, label=m.label) for m in methods]
    handles += extra or []
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)


def _log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Labels at 1-2-5 steps when the data spans few decades, so a log axis never shows a single label."""
    decades = np.log10(hi / lo) if lo > 0 and hi > 0 else 99
    subs = (1.0, 2.0, 5.0) if decades < 2.5 else (1.0, 3.0) if decades < 5 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_minor_formatter(NullFormatter())


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------------------------- (a)


def plot_score_by_length(methods: list[_Method], out_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Score per length bucket, one line per method with a 95% CI band; one panel per family."""
    fam_rows: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for m in methods:
        for r in m.rows:
            if r["scope"] == "family-bucket":
                fam_rows[r["task"]].setdefault(m.label, []).append(r)
    families = sorted(fam_rows)
    n = max(1, len(families))
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    with _style():
        fig = Figure(figsize=(4.6 * ncols + 0.6, 3.9 * nrows + 0.7), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        for ax in axes.flat[len(families):]:
            ax.set_visible(False)
        if not families:
            axes.flat[0].set_visible(True)
            _empty(axes.flat[0], "no scored samples")
        for ax, fam in zip(axes.flat, families):
            buckets = sort_buckets(r["bucket"] for rows in fam_rows[fam].values() for r in rows)
            pos = {b: i for i, b in enumerate(buckets)}
            same: dict[tuple, list[str]] = defaultdict(list)  # identical lines hide each other: say so
            for m in methods:
                rows = [r for r in fam_rows[fam].get(m.label, []) if r["score"] is not None]
                if not rows:
                    continue
                rows.sort(key=lambda r: pos[r["bucket"]])
                same[tuple((r["bucket"], round(r["score"], 6)) for r in rows)].append(m.label)
                x = np.array([pos[r["bucket"]] for r in rows], dtype=float)
                y = np.array([r["score"] for r in rows])
                lo = np.array([r["ci_low"] for r in rows])
                hi = np.array([r["ci_high"] for r in rows])
                ax.fill_between(x, lo, hi, color=m.color, alpha=_BAND_ALPHA, lw=0)
                ax.plot(x, y, "o-", color=m.color, lw=2, ms=5)
            hidden = [labels for labels in same.values() if len(labels) > 1]
            note = ""
            if hidden:  # under the axis, where it covers no data
                note = "\nidentical scores, drawn as one line:"
                for labels in hidden:
                    note += "".join("\n" + " = ".join(labels[i: i + 3]) + (" =" if i + 3 < len(labels) else "")
                                    for i in range(0, len(labels), 3))
            ax.set_xticks(range(len(buckets)), buckets, rotation=30 if len(buckets) > 5 else 0)
            ntask = max(r["n_tasks"] for rows in fam_rows[fam].values() for r in rows)
            ax.set_title(fam.removesuffix("/*") + (f" (mean of {ntask} tasks)" if ntask > 1 else ""))
            ax.set_xlabel("length bucket")
            if note:
                ax.set_xlabel("length bucket" + note, fontsize=8, linespacing=1.3)
            ax.set_ylim(bottom=min(0, ax.get_ylim()[0]))
        for ax in axes[:, 0]:
            ax.set_ylabel("score (×100)")
        fig.suptitle("Score by length bucket (shaded: 95% bootstrap CI)", fontweight="bold")
        _method_legend(fig, methods)
        return _save(fig, out_dir, "score_by_length", formats)


# ---------------------------------------------------------------------------------------------- (b)


def _by_length(records: list[dict[str, Any]], field: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``field`` per distinct fed prompt length, sorted by length (counted samples only)."""
    acc: dict[float, list[float]] = defaultdict(list)
    for r in records:
        x, y = r.get("prompt_tokens"), r.get(field)
        if r.get("status", "ok") != "ok" or not isinstance(x, int | float) or not isinstance(y, int | float):
            continue
        if x > 0 and y > 0:
            acc[float(x)].append(float(y))
    xs = np.array(sorted(acc))
    return xs, np.array([np.mean(acc[x]) for x in xs])


_STYLES = {"paper": ("-", None), "actual": ("--", None), "measured": ("none", "x")}


def plot_cost_vs_length(methods: list[_Method], out_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """FLOPs and cache bytes per sample against prompt length (log-log), per method and convention."""
    panels = [
        ("FLOPs per sample", "FLOPs", [("flops_paper", "paper"), ("flops_actual", "actual")], "FLOP"),
        ("Cache kept by the method", "cache (bytes)",
         [("cache_bytes_paper", "paper"), ("cache_bytes_actual", "actual"), ("cache_bytes_measured", "measured")],
         "B"),
    ]
    used: set[str] = set()
    with _style():
        fig = Figure(figsize=(11, 4.6), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (title, ylabel, fields, unit) in zip(axes, panels):
            drawn = False
            ys: list[float] = []
            for i, m in enumerate(methods):
                # earlier methods drawn wider and below, so methods with equal costs stay visible as outlines
                width = 1.8 + 0.9 * (len(methods) - 1 - i)
                for field, conv in fields:
                    x, y = _by_length(m.run.records, field)
                    if not len(x):
                        continue
                    ls, marker = _STYLES[conv]
                    ax.plot(x, y, linestyle=ls, marker=marker, color=m.color, lw=width if conv == "paper" else 1.6,
                            ms=5, mew=1.2, alpha=0.9, zorder=2 + i)
                    ys.extend(y)
                    used.add(conv)
                    drawn = True
            if not drawn:
                _empty(ax, "no cost data in these runs")
                ax.set_title(title)
                continue
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(_tokens_fmt))
            ax.xaxis.set_minor_formatter(NullFormatter())
            _log_ticks(ax.yaxis, min(ys), max(ys))
            ax.yaxis.set_major_formatter(EngFormatter(unit=unit, places=0))
            ax.set_xlabel("prompt tokens fed (after truncation)")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.grid(True, which="minor", alpha=0.25)
        fig.suptitle("Cost vs prompt length (log-log)", fontweight="bold")
        conv_handles = [
            Line2D([], [], color="0.3", linestyle=_STYLES[c][0], marker=_STYLES[c][1], lw=2,
                   label={"paper": "paper convention", "actual": "as implemented", "measured": "measured"}[c])
            for c in ("paper", "actual", "measured") if c in used
        ]
        _method_legend(fig, methods, conv_handles)
        return _save(fig, out_dir, "cost_vs_length", formats)


# ---------------------------------------------------------------------------------------------- (c)


def _overall_rows(methods: list[_Method]) -> tuple[dict[str, dict[str, Any]], str]:
    """Each method's overall row, on the tasks every run scored (else the scores are not comparable)."""
    task_sets = [{r["task"] for r in m.rows if r["scope"] == "task" and r["score"] is not None} for m in methods]
    common = set.intersection(*task_sets) if task_sets else set()
    out: dict[str, dict[str, Any]] = {}
    if common and any(ts != common for ts in task_sets):
        for m in methods:
            rows = summarize([r for r in m.run.records if r.get("task") in common])
            out[m.label] = next(r for r in rows if r["scope"] == "overall")
        return out, f"on the {len(common)} task(s) every run scored"
    for m in methods:
        row = next((r for r in m.rows if r["scope"] == "overall"), None)
        if row is not None:
            out[m.label] = row
    return out, "" if common or len(methods) < 2 else "runs share no task: scores not comparable"


def _pick_cost(overall: dict[str, dict[str, Any]], fields: Sequence[str]) -> str | None:
    """The most faithful cost field every method has: measured, else as implemented, else the paper's."""
    for f in fields:
        if overall and all(o.get(f) for o in overall.values()):
            return f
    for f in fields:  # otherwise the first any method has
        if any(o.get(f) for o in overall.values()):
            return f
    return None


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and score (higher), by increasing cost."""
    front, best = [], -np.inf
    for c, s in sorted(points, key=lambda p: (p[0], -p[1])):
        if s > best:
            front.append((c, s))
            best = s
    return front


def plot_score_vs_cost(methods: list[_Method], out_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Mean score (95% CI) against mean cache bytes and mean FLOPs per method, with the Pareto front."""
    names = {
        "cache_bytes_measured": "measured", "cache_bytes_actual": "as implemented",
        "cache_bytes_paper": "paper convention", "flops_actual": "as implemented", "flops_paper": "paper convention",
    }
    panels = [
        ("cache", ["cache_bytes_measured", "cache_bytes_actual", "cache_bytes_paper"], "B"),
        ("FLOPs", ["flops_actual", "flops_paper"], "FLOP"),
    ]
    overall, scope_note = _overall_rows(methods)
    with _style():
        fig = Figure(figsize=(11, 4.6), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        for ax, (what, fields, unit) in zip(axes, panels):
            field = _pick_cost(overall, fields)
            pts, missing = [], []
            for m in methods:
                o = overall.get(m.label)
                if field is None or o is None or o["score"] is None or not o.get(field):
                    missing.append(m.label)
                    continue
                x, y = o[field], o["score"]
                err = np.array([[y - o["ci_low"]], [o["ci_high"] - y]])
                ax.errorbar([x], [y], yerr=err, fmt="o", color=m.color, ms=9, capsize=4, lw=1.6, zorder=3)
                ax.annotate(m.label, (x, y), xytext=(7, 7), textcoords="offset points", fontsize=9,
                            color=m.color, fontweight="bold")
                pts.append((x, y))
            ax.set_title(f"Score vs {what}")
            if not pts:
                _empty(ax, f"no {what} data in these runs")
                continue
            if missing:
                ax.text(0.98, 0.02, f"not shown (no {what} data): {', '.join(missing)}", transform=ax.transAxes,
                        ha="right", va="bottom", fontsize=8, color="0.4")
            front = _pareto(pts)
            if len(front) > 1:
                fx, fy = zip(*front)
                ax.plot(fx, fy, "--", color="0.55", lw=1.2, zorder=1)
            ax.set_xscale("log")
            lo, hi = min(p[0] for p in pts), max(p[0] for p in pts)
            ax.set_xlim(lo / 2.0, hi * 3.0)  # room for the labels to the right
            _log_ticks(ax.xaxis, lo / 2.0, hi * 3.0)
            ax.xaxis.set_major_formatter(EngFormatter(unit=unit, places=0))
            ax.set_xlabel(f"mean {what} per sample ({names[field]}), log scale")
        axes[0].set_ylabel("mean score over tasks (×100)")
        title = "Score vs cost (up and left is better; dashed: Pareto front)"
        fig.suptitle(title + (f"\n{scope_note}" if scope_note else ""), fontweight="bold")
        _method_legend(fig, methods)
        return _save(fig, out_dir, "score_vs_cost", formats)


# ---------------------------------------------------------------------------------------------- API


def plot_runs(
    run_dirs: Sequence[str | Path | Run], out_dir: str | Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Draw the three figures for these runs into ``out_dir`` (created); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = _load(run_dirs)
    paths: list[Path] = []
    paths += plot_score_by_length(methods, out, formats)
    paths += plot_cost_vs_length(methods, out, formats)
    paths += plot_score_vs_cost(methods, out, formats)
    return paths
