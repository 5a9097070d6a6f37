"""Pictures of one or more runs, for a person to read at a glance.

Three figures, each written as PNG (for reading) and SVG (for papers and the web):

* ``score_by_length``: score per length bucket, one marker per method with its 95% CI as an error bar (Wilson
  for binary metrics, the bootstrap for graded ones: :mod:`harness.intervals`; the title says which), each
  bucket's sample count under its name. The buckets are categories: nothing is interpolated between them. A
  bucket's methods sit side by side within :data:`DODGE_SPAN` of the gap, so equal scores stay visible and
  the buckets stay apart; error bars are drawn over the markers with caps wider than them, and the axis
  reaches a little past 0 and 100, so an interval ending there stays visible.
* ``cost_vs_length``: FLOPs and cache bytes per sample against prompt length, log-log, per method; the
  paper's analytic convention solid, what the implementation computes/stores dashed, measured bytes as
  markers. Full attention's cache grows linearly, a bounded method's goes flat: visible at once. Below, each
  method on its own row at the longest length bucket, as a ratio to full attention's cost (log scale, the
  value printed), so bounded methods whose lines coincide above are told apart.
* ``score_vs_cost``: mean score against mean cache bytes and against mean FLOPs per method, labelled points
  with CI bars and the Pareto front (up and to the left is better). Each label is joined to its point by a
  leader line and placed where it overlaps no other label, marker or error bar and its line crosses none;
  methods at one spot share one label. The score axis fits the intervals (never far past 100).

A method has one colour, marker and line style in every figure (:mod:`harness.style`); legends list methods in
the paper's row order. Log axes carry at least four labelled ticks. Figures are drawn on
``matplotlib.figure.Figure`` objects (Agg canvas), so plotting touches no global backend or pyplot state and
works headless.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation, Text
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

from baselines.registry import get_spec
from harness.buckets import record_bucket, sort_buckets
from harness.store import Run, load_run
from harness.style import MethodStyle, method_of, sort_key, style_for
from harness.summary import summarize

DPI = 160
FORMATS = ("png", "svg")
LABEL_GID = "method-label"  # the gid of the text labels placed next to points (tests read their boxes)
MIN_LOG_TICKS = 4


@dataclass
class _Method:
    label: str
    run: Run
    rows: list[dict[str, Any]]
    method: str
    style: MethodStyle

    @property
    def color(self) -> str:
        return self.style.color


#: matplotlib's own copies of seaborn's white-grid look and notebook sizes (no seaborn needed)
STYLE_SHEETS = ("seaborn-v0_8-whitegrid", "seaborn-v0_8-notebook")


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """A clean grid style, applied only while drawing (the caller's rcParams are left as they were)."""
    import matplotlib.pyplot as plt

    with plt.style.context(list(STYLE_SHEETS)):
        yield


def _load(run_dirs: Sequence[str | Path | Run]) -> list[_Method]:
    """The runs as methods in the paper's row order, each with its style (a repeated method: open markers)."""
    runs = [r if isinstance(r, Run) else load_run(r) for r in run_dirs]
    labels = [r.label for r in runs]
    # Two runs of the same label (e.g. before/after a change) get their folder name appended.
    final = [
        f"{lab} ({r.path.name})" if labels.count(lab) > 1 and r.path is not None else lab
        for lab, r in zip(labels, runs)
    ]
    kinds = [method_of(r.manifest, lab) for lab, r in zip(labels, runs)]
    order = sorted(range(len(runs)), key=lambda i: (sort_key(kinds[i], final[i]), i))
    seen: dict[str, int] = defaultdict(int)
    methods = []
    for i in order:
        methods.append(_Method(final[i], runs[i], summarize(runs[i].records), kinds[i],
                               style_for(kinds[i], seen[kinds[i]])))
        seen[kinds[i]] += 1
    return methods


def _tokens_fmt(x: float, _pos: Any = None) -> str:
    if x >= 2**20 and x % 2**20 == 0:
        return f"{x / 2**20:g}M"
    if x >= 1024:
        return f"{x / 1024:g}k"
    return f"{x:g}"


def _save(fig: Figure, out_dir: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """Write the figure once per format; an SVG carries no date and fixed element ids, so the same runs give
    the same files (a committed figure changes only when the picture does)."""
    FigureCanvasAgg(fig)
    paths = []
    for ext in formats:
        path = out_dir / f"{stem}.{ext}"
        with rc_context({"svg.hashsalt": stem}):
            fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white",
                        metadata={"Date": None} if ext == "svg" else None)
        paths.append(path)
    return paths


def _handle(m: _Method, **kwargs: Any) -> Line2D:
    return Line2D([], [], lw=1.6, ms=7, label=m.label, **{**m.style.line_kwargs(), **kwargs})


def _method_legend(fig: Figure, methods: list[_Method], extra: list[Line2D] | None = None, **style: Any) -> None:
    handles = [_handle(m, **style) for m in methods] + (extra or [])
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False,
               handlelength=3.2)


def _log_view(lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` widened until 1-2-5 steps put MIN_LOG_TICKS ticks in it (denser steps would crowd an x axis)."""
    locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=50)
    while lo > 0 and hi > lo and sum(lo <= t <= hi for t in locator.tick_values(lo, hi)) < MIN_LOG_TICKS:
        lo, hi = lo / 1.25, hi * 1.25
    return lo, hi


def _log2_ticks(axis: Any, lo: float, hi: float) -> None:
    """Token-count ticks at powers of two, with the halfway 1.5x steps when the data spans few of them."""
    subs: tuple[float, ...] = (1.0,)
    if sum(lo <= t <= hi for t in LogLocator(base=2, numticks=50).tick_values(lo, hi)) < MIN_LOG_TICKS:
        subs = (1.0, 1.5)
    axis.set_major_locator(LogLocator(base=2, subs=subs, numticks=50))
    axis.set_minor_formatter(NullFormatter())


def _log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Major ticks at the coarsest 1-2-5-like steps that put at least MIN_LOG_TICKS labels inside [lo, hi]."""
    steps = [(1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0), tuple(float(i) for i in range(1, 10))]
    chosen = steps[-1]
    if lo > 0 and hi > lo:
        for subs in steps:
            locator = LogLocator(base=10, subs=subs, numticks=50)
            if sum(lo <= t <= hi for t in locator.tick_values(lo, hi)) >= MIN_LOG_TICKS:
                chosen = subs
                break
    axis.set_major_locator(LogLocator(base=10, subs=chosen, numticks=50))
    axis.set_minor_formatter(NullFormatter())


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------------------------- (a)


DODGE_SPAN = 0.42  # a bucket's methods spread over this fraction of the gap between buckets
MAX_DODGE_STEP = 0.12
_CI_TITLES = {
    frozenset({"wilson"}): "bars: 95% Wilson interval",
    frozenset({"bootstrap"}): "bars: 95% bootstrap CI",
    frozenset({"wilson", "bootstrap"}): "bars: 95% CI, Wilson for binary metrics, bootstrap for graded",
}


def dodge_offsets(n_methods: int) -> np.ndarray:
    """Each method's x offset within a bucket: centred, together spanning at most :data:`DODGE_SPAN`."""
    if n_methods <= 1:
        return np.zeros(max(n_methods, 0))
    step = min(DODGE_SPAN / (n_methods - 1), MAX_DODGE_STEP)
    return (np.arange(n_methods) - (n_methods - 1) / 2) * step


def ci_title(methods: set[str]) -> str:
    """What the error bars are, from the ``ci_method`` of the rows drawn."""
    return _CI_TITLES.get(frozenset(m for m in methods if m), "bars: 95% CI")


def _n_text(ns: list[int]) -> str:
    return f"n={min(ns)}" if min(ns) == max(ns) else f"n={min(ns)}–{max(ns)}"


def score_limits(lows: list[float], highs: list[float]) -> tuple[float, float]:
    """A score axis (×100) that fits the intervals drawn: 0 and 100 kept when the data come near them, a few
    percent of room beyond, so a cap at 0 or 100 is drawn inside the axes and never on its frame."""
    if not lows:
        return -4.0, 104.0
    lo, hi = min(lows), max(highs)
    bottom = 0.0 if lo < 40 else 10.0 * np.floor((lo - 5) / 10)
    top = 100.0 if hi > 60 else 10.0 * np.ceil((hi + 5) / 10)
    pad = 0.04 * (top - bottom)
    return float(bottom - pad), float(top + pad)


def score_by_length_figure(methods: list[_Method]) -> Figure:
    """Score per length bucket: per method a marker and its 95% CI as an error bar, side by side per bucket;
    each bucket's sample count under its name."""
    fam_rows: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for m in methods:
        for r in m.rows:
            if r["scope"] == "family-bucket":
                fam_rows[r["task"]].setdefault(m.label, []).append(r)
    families = sorted(fam_rows)
    n = max(1, len(families))
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    nb = max((len({r["bucket"] for rows in fr.values() for r in rows}) for fr in fam_rows.values()),
             default=1)
    offsets = dodge_offsets(len(methods))
    lows: list[float] = []
    highs: list[float] = []
    ci_methods: set[str] = set()
    with _style():
        width = max(4.4, 1.35 * nb + 1.4)  # per panel: room for the dodged methods of every bucket
        fig = Figure(figsize=(width * ncols + 0.4, 3.9 * nrows + 0.8), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        for ax in axes.flat[len(families):]:
            ax.set_visible(False)
        if not families:
            axes.flat[0].set_visible(True)
            _empty(axes.flat[0], "no scored samples")
        for ax, fam in zip(axes.flat, families):
            buckets = sort_buckets(r["bucket"] for rows in fam_rows[fam].values() for r in rows)
            pos = {b: i for i, b in enumerate(buckets)}
            ns: dict[str, list[int]] = defaultdict(list)
            for i, m in enumerate(methods):
                rows = [r for r in fam_rows[fam].get(m.label, []) if r["score"] is not None]
                if not rows:
                    continue
                rows.sort(key=lambda r: pos[r["bucket"]])
                x = np.array([pos[r["bucket"]] for r in rows], dtype=float) + offsets[i]
                y = np.array([r["score"] for r in rows])
                lo = np.array([r["ci_low"] if r["ci_low"] is not None else r["score"] for r in rows])
                hi = np.array([r["ci_high"] if r["ci_high"] is not None else r["score"] for r in rows])
                for r in rows:
                    ns[r["bucket"]].append(r["n"])
                    ci_methods.add(r.get("ci_method") or "")
                lows.extend(lo)
                highs.extend(hi)
                kw = m.style.line_kwargs()
                # a thin line only guides the eye from bucket to bucket; the CI is the error bar, drawn over the
                # marker with caps wider than it, so an interval ending at 0 or 100 stays visible
                ax.plot(x, y, lw=0.9, ms=5.5, alpha=0.9, zorder=3, gid=f"method:{m.label}", **kw)
                bars = ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", ecolor=m.color, elinewidth=1.4,
                                   capsize=3.5, capthick=1.4, zorder=4)
                bars.lines[2][0].set_gid(f"ci:{m.label}")
            ticks = [f"{b}\n{_n_text(ns[b])}" if ns.get(b) else b for b in buckets]
            ax.set_xticks(range(len(buckets)), ticks, rotation=30 if len(buckets) > 6 else 0)
            ax.set_xlim(-0.5, len(buckets) - 0.5)
            ntask = max(r["n_tasks"] for rows in fam_rows[fam].values() for r in rows)
            ax.set_title(fam.removesuffix("/*") + (f" (mean of {ntask} tasks)" if ntask > 1 else ""))
            ax.set_xlabel("length bucket (n: samples per method)")
            ax.grid(False, axis="x")
            for edge in range(1, len(buckets)):  # bucket boundaries: the buckets are categories
                ax.axvline(edge - 0.5, color="0.88", lw=0.8, zorder=0)
        if families:
            axes.flat[0].set_ylim(*score_limits(lows, highs))
        for ax in axes[:, 0]:
            ax.set_ylabel("score (×100)")
        fig.suptitle(f"Score by length bucket ({ci_title(ci_methods)})", fontweight="bold")
        _method_legend(fig, methods)
    return fig


def plot_score_by_length(methods: list[_Method], out_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``score_by_length`` (see :func:`score_by_length_figure`)."""
    with _style():
        return _save(score_by_length_figure(methods), out_dir, "score_by_length", formats)


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


# line style per cost convention (the method is told by colour and marker): the paper's analytic count solid
# with the method's marker, the implementation's count dashed, the live cache as open markers
_CONVENTIONS = {"paper": "-", "actual": "--", "measured": "none"}
_CONVENTION_NAMES = {"paper": "paper convention", "actual": "as implemented", "measured": "measured"}


def _bucket_means(records: list[dict[str, Any]], field: str) -> dict[str, float]:
    """Mean of ``field`` per length bucket over the counted samples that recorded it."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in records:
        y = r.get(field)
        if r.get("status", "ok") == "ok" and isinstance(y, int | float) and y > 0:
            acc[record_bucket(r)].append(float(y))
    return {b: float(np.mean(v)) for b, v in acc.items()}


def relative_costs(methods: list[_Method], fields: Sequence[str]
                   ) -> tuple[str, str, dict[str, float], bool] | None:
    """Each method's mean cost in the longest length bucket they all recorded, as a ratio to full attention's
    there (or absolute when no run is full attention): (field, bucket, values by label, is_ratio)."""
    for field in fields:
        means = {m.label: _bucket_means(m.run.records, field) for m in methods}
        if not all(means.values()):
            continue
        common = set.intersection(*(set(v) for v in means.values()))
        if not common:
            continue
        bucket = sort_buckets(common)[-1]
        ref = next((m for m in methods if not get_spec(m.method).bounded), None)  # full attention keeps every token
        if ref is None:
            return field, bucket, {lab: v[bucket] for lab, v in means.items()}, False
        base = means[ref.label][bucket]
        return field, bucket, {lab: v[bucket] / base for lab, v in means.items()}, True
    return None


def _ratio_fmt(x: float, _pos: Any = None) -> str:
    return f"{x:g}×"


def _dot_panel(ax: Axes, methods: list[_Method], what: str, fields: Sequence[str], unit: str) -> None:
    """One row per method: its cost in the longest common bucket (÷ full attention), log x, value printed."""
    got = relative_costs(methods, fields)
    if got is None:
        _empty(ax, f"no {what} data shared by these runs")
        return
    field, bucket, values, ratio = got
    ys = np.arange(len(methods))[::-1]
    for y, m in zip(ys, methods):
        v = values[m.label]
        kw = m.style.line_kwargs()
        ax.plot([v], [y], linestyle="none", marker=kw["marker"], ms=8, mfc=kw["markerfacecolor"], mec=m.color,
                color=m.color, zorder=3, gid=f"cost:{m.label}")
        ax.hlines(y, 0, v, color=m.color, lw=1.0, alpha=0.5, zorder=2)
        text = f"{v:.3g}×" if ratio else EngFormatter(unit=unit, places=1)(v)
        ax.annotate(text, (v, y), xytext=(7, 0), textcoords="offset points", va="center", fontsize=8.5,
                    color=m.color)
    lo, hi = min(values.values()), max(values.values())
    lo_v, hi_v = lo / 1.35, hi * 1.7  # room for the printed values on the right
    dense = LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0), numticks=50)
    while sum(lo_v <= t <= hi_v for t in dense.tick_values(lo_v, hi_v)) < MIN_LOG_TICKS:
        lo_v, hi_v = lo_v / 1.2, hi_v * 1.2
    ax.set_xscale("log")
    ax.set_xlim(lo_v, hi_v)
    _log_ticks(ax.xaxis, lo_v, hi_v)
    ax.xaxis.set_major_formatter(FuncFormatter(_ratio_fmt) if ratio else EngFormatter(unit=unit))
    ax.set_yticks(ys, [m.label for m in methods])
    for tick, m in zip(ax.get_yticklabels(), methods):
        tick.set_color(m.color)
    ax.set_ylim(-0.7, len(methods) - 0.3)
    ax.grid(False, axis="y")
    conv = {"cache_bytes_measured": "measured", "cache_bytes_actual": "as implemented",
            "cache_bytes_paper": "paper convention", "flops_actual": "as implemented",
            "flops_paper": "paper convention"}[field]
    ax.set_xlabel(f"{what} ({conv}) " + ("÷ full attention's" if ratio else "per sample") + ", log scale")
    ax.set_title(f"{what[0].upper() + what[1:]} at {bucket}" + (" relative to full attention" * ratio))


def cost_vs_length_figure(methods: list[_Method]) -> Figure:
    """Top: FLOPs and cache bytes per sample against prompt length (log-log), per method and convention.
    Bottom: each method on its own row at the longest length bucket, as a ratio to full attention, so methods
    whose lines coincide above are told apart."""
    panels = [
        ("FLOPs per sample", "FLOPs", [("flops_paper", "paper"), ("flops_actual", "actual")], "FLOP"),
        ("Cache kept by the method", "cache (bytes)",
         [("cache_bytes_paper", "paper"), ("cache_bytes_actual", "actual"), ("cache_bytes_measured", "measured")],
         "B"),
    ]
    used: set[str] = set()
    with _style():
        fig = Figure(figsize=(11, 4.6 + 0.36 * len(methods) + 1.2), layout="constrained")
        grid = fig.subplots(2, 2, height_ratios=[4.6, 0.36 * len(methods) + 1.0])
        axes = grid[0]
        for ax, (title, ylabel, fields, unit) in zip(axes, panels):
            drawn = False
            xs: list[float] = []
            ys: list[float] = []
            for i, m in enumerate(methods):
                # earlier methods drawn wider and below, so methods with equal costs stay visible as outlines
                width = 1.4 + 0.7 * (len(methods) - 1 - i)
                for field, conv in fields:
                    x, y = _by_length(m.run.records, field)
                    if not len(x):
                        continue
                    kw = {"color": m.color, "linestyle": _CONVENTIONS[conv], "alpha": 0.9, "zorder": 2 + i}
                    if conv == "paper":
                        ax.plot(x, y, lw=width, marker=m.style.marker, ms=6, mfc=m.color, mec="white", mew=0.6, **kw)
                    elif conv == "actual":
                        ax.plot(x, y, lw=1.4, **kw)
                    else:
                        ax.plot(x, y, marker=m.style.marker, ms=9, mfc="none", mec=m.color, mew=1.3, **kw)
                    ys.extend(y)
                    xs.extend(x)
                    used.add(conv)
                    drawn = True
            if not drawn:
                _empty(ax, "no cost data in these runs")
                ax.set_title(title)
                continue
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            _log2_ticks(ax.xaxis, min(xs), max(xs))
            ax.xaxis.set_major_formatter(FuncFormatter(_tokens_fmt))
            _log_ticks(ax.yaxis, min(ys), max(ys))
            ax.yaxis.set_major_formatter(EngFormatter(unit=unit))
            ax.set_xlabel("prompt tokens fed (after truncation)")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.grid(True, which="minor", alpha=0.25)
        _dot_panel(grid[1][0], methods, "FLOPs", ("flops_actual", "flops_paper"), "FLOP")
        _dot_panel(grid[1][1], methods, "cache",
                   ("cache_bytes_measured", "cache_bytes_actual", "cache_bytes_paper"), "B")
        fig.suptitle("Cost vs prompt length (log-log), and relative to full attention", fontweight="bold")
        conv_handles = [
            Line2D([], [], color="0.3", linestyle=_CONVENTIONS[c], lw=2, marker="o" if c == "measured" else None,
                   mfc="none", label=_CONVENTION_NAMES[c])
            for c in ("paper", "actual", "measured") if c in used
        ]
        _method_legend(fig, methods, conv_handles, linestyle="-")
    return fig


def plot_cost_vs_length(methods: list[_Method], out_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``cost_vs_length`` (see :func:`cost_vs_length_figure`)."""
    with _style():
        return _save(cost_vs_length_figure(methods), out_dir, "cost_vs_length", formats)


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


def _boxes_overlap(a: Any, b: Any, pad: float = 1.0) -> bool:
    return a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad


def _overlap_area(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(0.0, w) * max(0.0, h)


def label_box(text: Text, renderer: Any) -> Bbox:
    """The box of a label's text alone (an annotation's own extent also spans its leader line)."""
    if isinstance(text, Annotation):
        text.update_positions(renderer)  # where its offset puts it (done by drawing otherwise)
    return Text.get_window_extent(text, renderer)


def _leader_hits(start: np.ndarray, end: np.ndarray, boxes: list[Any], skip: float) -> float:
    """How many sample points of the segment ``start -> end`` (the last ``skip`` pixels left out: the marker the
    line points at) fall inside ``boxes``."""
    length = float(np.hypot(*(end - start)))
    if length <= skip:
        return 0.0
    hits = 0
    for t in np.linspace(0.0, 1.0 - skip / length, max(2, int(length // 4))):
        q = start + t * (end - start)
        hits += sum(b.x0 < q[0] < b.x1 and b.y0 < q[1] < b.y1 for b in boxes)
    return float(hits)


def place_labels(ax: Axes, points: list[tuple[float, float, list[_Method]]],
                 obstacles: list[Any] | None = None) -> list[Text]:
    """Text labels next to points (data coordinates), each joined to its point by a leader line; no label
    overlaps another label, a marker or an error bar, and no leader line crosses a label or another marker.

    Points closer than a marker's width on screen share one label (their methods one per line). For each
    label, offsets at growing distances and eight directions are tried in order; the first whose box lies
    inside the axes and clear of everything placed so far wins; if none is clear, the least-overlapping one.
    The figure's layout is settled first, so the boxes tested here are the boxes drawn. (adjustText does this
    by iterative repulsion but needs scipy, which nothing else here does.)
    """
    fig = ax.get_figure()
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData
    groups: list[tuple[np.ndarray, list[_Method]]] = []
    for x, y, ms in points:
        p = to_px.transform((x, y))
        for g in groups:
            if np.hypot(*(g[0] - p)) < 9.0:
                g[1].extend(ms)
                break
        else:
            groups.append((p, list(ms)))
    marker_px = 7.0 * fig.dpi / 72.0
    markers = [Bbox.from_extents(p[0] - marker_px, p[1] - marker_px, p[0] + marker_px, p[1] + marker_px)
               for p, _ in groups]
    taken = markers + list(obstacles or [])
    labels: list[Any] = []
    frame = ax.get_window_extent(renderer)
    directions = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
    texts: list[Text] = []
    for gi, (p, ms) in sorted(enumerate(groups), key=lambda g: (g[1][0][0], -g[1][0][1])):
        inv = to_px.inverted().transform(p)
        label = "\n".join(m.label for m in ms)
        color = ms[0].color if len(ms) == 1 else "0.15"
        others = [b for i, b in enumerate(markers) if i != gi] + labels
        best: tuple[float, Any, Any] | None = None
        for dist in (12, 20, 30, 44, 62):
            for dx, dy in directions:
                norm = np.hypot(dx, dy)
                off = (dist * dx / norm, dist * dy / norm)
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                text = ax.annotate(label, tuple(inv), xytext=off, textcoords="offset points", ha=ha, va=va,
                                   fontsize=8.5, color=color, fontweight="bold", zorder=6, gid=LABEL_GID,
                                   arrowprops={"arrowstyle": "-", "color": color, "lw": 0.7, "alpha": 0.8,
                                               "shrinkA": 1, "shrinkB": 5})
                text.set_in_layout(False)
                box = label_box(text, renderer)
                inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
                crossings = _leader_hits(centre, p, others, marker_px)
                cost = sum(_overlap_area(box, t) for t in taken) + 50.0 * crossings + (0.0 if inside else 1e9)
                clear = inside and crossings == 0 and not any(_boxes_overlap(box, t) for t in taken)
                if clear:
                    if best is not None:
                        best[1].remove()
                    best = (0.0, text, box)
                    break
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, text, box)
                else:
                    text.remove()
            if best is not None and best[0] == 0.0:
                break
        assert best is not None
        texts.append(best[1])
        taken.append(best[2])
        labels.append(best[2])
    return texts


def score_vs_cost_figure(methods: list[_Method]) -> Figure:
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
        fig = Figure(figsize=(11, 5.0), layout="constrained")
        FigureCanvasAgg(fig)  # label placement measures text on this canvas
        axes = fig.subplots(1, 2, sharey=True)
        ns = [o["n"] for o in overall.values() if o.get("score") is not None]
        ci_how = ci_title({o.get("ci_method") or "" for o in overall.values()})
        title = "Score vs cost (up and left is better; dashed: Pareto front)"
        sub = f"{ci_how}; {_n_text(ns)} samples per method" if ns else ""
        sub = "; ".join(x for x in (sub, scope_note) if x)
        fig.suptitle(title + (f"\n{sub}" if sub else ""), fontweight="bold")
        _method_legend(fig, methods, linestyle="none")
        placed: list[tuple[Axes, list[tuple[float, float, list[_Method]]], list[tuple[float, float, float]]]] = []
        lows, highs = [], []
        for ax, (what, fields, unit) in zip(axes, panels):
            field = _pick_cost(overall, fields)
            pts, points, bars, missing = [], [], [], []
            for m in methods:
                o = overall.get(m.label)
                if field is None or o is None or o["score"] is None or not o.get(field):
                    missing.append(m.label)
                    continue
                x, y = o[field], o["score"]
                lo = o["ci_low"] if o["ci_low"] is not None else y
                hi = o["ci_high"] if o["ci_high"] is not None else y
                kw = m.style.line_kwargs()
                ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], fmt=kw["marker"], color=m.color,
                            mfc=kw["markerfacecolor"], mec=m.color, ms=9, capsize=4, lw=1.6, zorder=3)
                pts.append((x, y))
                points.append((x, y, [m]))
                bars.append((x, lo, hi))
                lows.append(lo)
                highs.append(hi)
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
            lo_x, hi_x = _log_view(min(p[0] for p in pts) / 1.7, max(p[0] for p in pts) * 2.6)  # label room
            ax.set_xlim(lo_x, hi_x)
            _log_ticks(ax.xaxis, lo_x, hi_x)
            ax.xaxis.set_major_formatter(EngFormatter(unit=unit))
            ax.set_xlabel(f"mean {what} per sample ({names[field]}), log scale")
            placed.append((ax, points, bars, front))
        axes[0].set_ylabel("mean score over tasks (×100)")
        if lows:  # the intervals with a little room for labels, never far past 0 or 100
            span = max(max(highs) - min(lows), 10.0)
            bottom = max(min(lows) - 0.12 * span, -0.04 * span)
            top = min(max(highs) + 0.12 * span, 100.0 + 0.04 * span)
            axes[0].set_ylim(bottom, top)
        for ax, points, bars, front in placed:
            fig.draw_without_rendering()
            tr = ax.transData
            obstacles = []
            for x, lo, hi in bars:  # the error bars: thin boxes a label must not cross
                (x0, y0), (x1, y1) = tr.transform((x, lo)), tr.transform((x, hi))
                obstacles.append(Bbox.from_extents(x0 - 4, y0, x1 + 4, y1))
            for a, b in zip(front, front[1:]):  # the Pareto front: small boxes along each segment
                pa, pb = tr.transform(a), tr.transform(b)
                for t in np.linspace(0.0, 1.0, max(2, int(np.hypot(*(pb - pa)) // 6))):
                    q = pa + t * (pb - pa)
                    obstacles.append(Bbox.from_extents(q[0] - 2, q[1] - 2, q[0] + 2, q[1] + 2))
            place_labels(ax, points, obstacles)
    return fig


def plot_score_vs_cost(methods: list[_Method], out_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``score_vs_cost`` (see :func:`score_vs_cost_figure`)."""
    with _style():
        return _save(score_vs_cost_figure(methods), out_dir, "score_vs_cost", formats)


# ---------------------------------------------------------------------------------------------- API


def plot_runs(
    run_dirs: Sequence[str | Path | Run], out_dir: str | Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Draw the three figures for these runs into ``out_dir`` (created); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from tasks.safe_write import check_target

    for name in ("score_by_length", "cost_vs_length", "score_vs_cost"):  # never write a figure through a link
        for ext in formats:
            check_target(out / f"{name}.{ext}")
    methods = _load(run_dirs)
    paths: list[Path] = []
    paths += plot_score_by_length(methods, out, formats)
    paths += plot_cost_vs_length(methods, out, formats)
    paths += plot_score_vs_cost(methods, out, formats)
    return paths
