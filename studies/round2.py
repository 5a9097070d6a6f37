"""The second tiny world's three questions, read off per-sample records: length, capacity, exact recall.

Three questions, one function each, each writing ``<stem>.json``, ``<stem>.md`` and a figure
(``<stem>.png`` / ``.svg``) with 95% percentile-bootstrap CIs (:func:`harness.summary.bootstrap_ci`):

* :func:`length_report`: accuracy by prompt length (1k-32k) per method, and the first length at which each
  method's accuracy falls below 50% ("none up to <longest>" when it never does).
* :func:`capacity_report`: accuracy against the number k of labelled pass keys (``synthetic/passkey_k{k}``),
  per method and length, counting only samples whose every needle has left the sinks + window view, and the
  largest k each method still answers at >= 50%.
* :func:`kv_report`: kv_retrieval; whether full attention (the teacher) reaches 90% at every length up to the
  base's training length, and each bounded method's accuracy on samples whose pair left the window, beside
  sinks + window with the paired CI of the difference (as :mod:`studies.claims`), and the share of the value's
  hex digits each method puts in the right place there (:func:`digits_right`): whether a method that copies
  no value whole still keeps part of it.

Runs are found under a root at any depth (one folder per job is fine) and merged per method label; a sample
key seen in two folders of one label is an error, since the two would be one experiment counted twice.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.presets import TINY_SINKS, TINY_WINDOW
from harness.store import MANIFEST, Run, RunError, load_run
from harness.summary import N_BOOT, bootstrap_ci, is_scored, row_seed
from studies.claims import paired_difference

HALF = 0.5
TEACHER_BAR = 0.9  # the kv base must score >= 90% with full attention at 1k-4k to be a teacher
NEEDLE_SPAN = 96  # tokens a labelled pass key (<= 77 bytes) or a kv pair (78 bytes) spans at most
KV_TASK = "synthetic/kv_retrieval"
CAPACITY_TASK = re.compile(r"^synthetic/passkey_k(\d+)$")


@dataclass
class Method:
    """Every record of one method label, merged over its run folders."""

    label: str
    kind: str  # full, swa, ct-max, ct-avg, ahn-gdn, ...
    sinks: int | None
    window: int | None
    records: list[dict[str, Any]]
    folders: list[str] = field(default_factory=list)


@dataclass
class Point:
    n: int
    mean: float | None
    ci: list[float] | None


def _kind(run: Run) -> tuple[str, int | None, int | None]:
    m = run.manifest.get("config", {}).get("method", {})
    if isinstance(m, str):
        return m, None, None
    return str(m.get("method", run.label)), m.get("sinks"), m.get("window")


def collect(root: Path | Sequence[Path]) -> list[Method]:
    """Run folders (a ``manifest.json`` inside) under ``root``, merged per label, in a stable order."""
    roots = [root] if isinstance(root, (str, Path)) else list(root)
    folders = sorted({p.parent for r in roots for p in Path(r).rglob(MANIFEST)})
    if not folders:
        raise RunError(f"no run folders (a {MANIFEST} inside) under {', '.join(map(str, roots))}")
    methods: dict[str, Method] = {}
    for folder in folders:
        run = load_run(folder)
        kind, sinks, window = _kind(run)
        m = methods.setdefault(run.label, Method(run.label, kind, sinks, window, []))
        if (m.kind, m.sinks, m.window) != (kind, sinks, window):
            raise RunError(f"{folder}: label {run.label} is {kind} {sinks}+{window} here but "
                           f"{m.kind} {m.sinks}+{m.window} in {m.folders[0]}")
        seen = {r["key"] for r in m.records}
        twice = sorted(seen & {r["key"] for r in run.records})
        if twice:
            raise RunError(f"{folder}: {len(twice)} sample(s) of {run.label} also in {', '.join(m.folders)}, "
                           f"e.g. {twice[0]}")
        m.records += run.records
        m.folders.append(str(folder))
    return sorted(methods.values(), key=lambda m: (_order(m.kind), m.label))


def _order(kind: str) -> int:
    for i, prefix in enumerate(("full", "swa", "ct", "ahn")):
        if kind.startswith(prefix):
            return i
    return 9


def _tokens(r: dict[str, Any]) -> int:
    """The requested length of a synthetic sample (the bucket label of its length)."""
    return int((r.get("extra") or {}).get("n_tokens") or r.get("prompt_tokens") or 0)


def _label(n: int) -> str:
    from tasks.synthetic.lengths import level_label

    return level_label(n)


def all_needles_outside(r: dict[str, Any], sinks: int, window: int, span: int = NEEDLE_SPAN) -> bool | None:
    """Whether every needle of a sample has left the sinks + window view when the answer starts."""
    extra = r.get("extra") or {}
    offsets = extra.get("needle_token_offsets") or ([extra["needle_token_offset"]]
                                                    if extra.get("needle_token_offset") is not None else [])
    if not offsets or r.get("prompt_tokens") is None:
        return None
    return all(o >= sinks and o + span <= r["prompt_tokens"] - window for o in offsets)


def digits_right(r: dict[str, Any]) -> float | None:
    """Share of the expected value's hex digits that the first line of the prediction has at the same place
    (the dashes of the UUID skipped); None for a record without an answer. A guess in the UUID-4 format that
    knows nothing of the value gets about 1/16 of the digits, plus its two fixed ones."""
    answers = r.get("answers") or []
    if not answers:
        return None
    value = str(answers[0])
    lines = (r.get("prediction") or "").strip().splitlines()
    guess = lines[0].strip() if lines else ""
    places = [i for i, ch in enumerate(value) if ch != "-"]
    return sum(1 for i in places if i < len(guess) and guess[i] == value[i]) / len(places) if places else None


def _point(strata: list[list[float]], *labels: str, n_boot: int = N_BOOT) -> Point:
    """Mean of the strata's means (equal weight per task) and its bootstrap CI."""
    strata = [s for s in strata if s]
    n = sum(len(s) for s in strata)
    if not n:
        return Point(0, None, None)
    mean = float(np.mean([np.mean(s) for s in strata]))
    ci = bootstrap_ci(strata, n_boot=n_boot, seed=row_seed(0, *labels))
    return Point(n, mean, [float(ci[0]), float(ci[1])] if ci else None)


def _pt(d: dict[str, Any]) -> Point:
    return Point(d["n"], d["mean"], d["ci"])


def _fmt(p: Point) -> str:
    if p.mean is None:
        return ""
    ci = f" [{p.ci[0]:.0%}, {p.ci[1]:.0%}]" if p.ci else ""
    return f"{p.mean:.0%}{ci}"


# ------------------------------------------------------------------------------------------ question 1

DISTANCE_EDGES = (1024, 2048, 4096, 8192, 16384, 32768)  # bins of tokens from the needle to the question


def needle_distance(r: dict[str, Any]) -> int | None:
    """Tokens from a single-needle sample's needle to the end of its prompt (where the question is read)."""
    offset = (r.get("extra") or {}).get("needle_token_offset")
    if offset is None or r.get("prompt_tokens") is None:
        return None
    return int(r["prompt_tokens"]) - int(offset)


@functools.cache
def distance_bins() -> tuple[str, ...]:
    """The distance bins' labels in order: "<1k", "1k-2k", …, "16k-32k", ">=32k"."""
    edges = DISTANCE_EDGES
    return (f"<{_label(edges[0])}", *(f"{_label(lo)}-{_label(hi)}" for lo, hi in zip(edges, edges[1:])),
            f">={_label(edges[-1])}")


def distance_bin(d: int) -> str:
    """The bin of a distance (see `distance_bins`)."""
    return distance_bins()[bisect.bisect_right(DISTANCE_EDGES, d)]


def _by_distance(m: Method, wanted: set[str] | None, n_boot: int) -> dict[str, dict[str, Any]]:
    """Per length, accuracy by needle distance over the samples whose needle left the window (bounded methods):
    tells forgetting with distance (the decay horizon) from failing with the length itself."""
    if m.window is None:
        return {}
    cells: dict[int, dict[str, dict[str, list[float]]]] = {}
    for r in m.records:
        if not is_scored(r) or (wanted and r["task"] not in wanted) or CAPACITY_TASK.match(r["task"]) \
                or r["task"] == KV_TASK or not all_needles_outside(r, m.sinks or 0, m.window):
            continue
        d = needle_distance(r)
        if d is None:
            continue
        cells.setdefault(_tokens(r), {}).setdefault(distance_bin(d), {}).setdefault(r["task"], []).append(
            float(r["score"]))
    return {_label(n): {b: asdict(_point(list(by_task.values()), m.label, str(n), b, n_boot=n_boot))
                        for b, by_task in sorted(bins.items(), key=lambda kv: distance_bins().index(kv[0]))}
            for n, bins in sorted(cells.items())}



def length_report(methods: Sequence[Method], tasks: Sequence[str] | None = None, n_boot: int = N_BOOT) -> dict:
    """Accuracy by length per method (tasks pooled with equal weight, and per task); where each falls below 50%."""
    wanted = set(tasks) if tasks else None
    out: dict[str, Any] = {"question": "accuracy by length", "metric": "greedy exact match (InfiniteBench's rule)",
                           "methods": {}}
    all_lengths: set[int] = set()
    for m in methods:
        by: dict[int, dict[str, list[float]]] = {}
        for r in m.records:
            if not is_scored(r) or (wanted and r["task"] not in wanted) or CAPACITY_TASK.match(r["task"]) \
                    or r["task"] == KV_TASK:
                continue
            by.setdefault(_tokens(r), {}).setdefault(r["task"], []).append(float(r["score"]))
        if not by:
            continue
        rows = {}
        below = None
        for n in sorted(by):
            all_lengths.add(n)
            tasks_here = by[n]
            p = _point(list(tasks_here.values()), m.label, str(n), n_boot=n_boot)
            rows[_label(n)] = {"tokens": n, **asdict(p),
                               "by_task": {t: asdict(_point([v], m.label, str(n), t, n_boot=n_boot))
                                           for t, v in sorted(tasks_here.items())}}
            if below is None and p.mean is not None and p.mean < HALF:
                below = _label(n)
        out["methods"][m.label] = {"kind": m.kind, "sinks": m.sinks, "window": m.window, "by_length": rows,
                                   "below_half": below, "longest": _label(max(by)),
                                   "by_distance": _by_distance(m, wanted, n_boot)}
    if not out["methods"]:
        raise RunError("no scored sample of a length task (passkey, number_string, ...) in these runs")
    out["lengths"] = [_label(n) for n in sorted(all_lengths)]
    return out


def length_markdown(rep: dict, source: str) -> str:
    lengths = rep["lengths"]
    tasks = sorted({t for m in rep["methods"].values() for row in m["by_length"].values() for t in row["by_task"]})
    lines = ["# The tiny world past the training length", "",
             f"Greedy exact-match accuracy by prompt length, {', '.join(t.removeprefix('synthetic/') for t in tasks)} "
             "pooled with equal weight, 95% bootstrap CI in brackets, n samples per cell (every sample, wherever its "
             "needle sits). \"Below 50% from\" is the first length whose accuracy is under 50%. Produced by "
             f"`python -m studies.check_round2 length` from the per-sample records under `{source}`.", "",
             "| method | " + " | ".join(lengths) + " | below 50% from |", "|---|" + "---:|" * len(lengths) + "---|"]
    for label, m in rep["methods"].items():
        cells = []
        for lv in lengths:
            row = m["by_length"].get(lv)
            cells.append(f"{_fmt(_pt(row))} (n={row['n']})" if row else "")
        below = m["below_half"] or f"none up to {m['longest']}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {below} |")
    for task in tasks:
        lines += ["", f"`{task}` alone:", "", "| method | " + " | ".join(lengths) + " |",
                  "|---|" + "---:|" * len(lengths)]
        for label, m in rep["methods"].items():
            cells = []
            for lv in lengths:
                p = (m["by_length"].get(lv) or {}).get("by_task", {}).get(task)
                cells.append(_fmt(_pt(p)) if p else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    memories = {label: m for label, m in rep["methods"].items() if m["kind"].startswith("ahn") and m.get("by_distance")}
    if memories:
        lines += ["", "## Where the memory fails: accuracy by the needle's distance from the question", "",
                  "Samples whose needle left the sinks + window view only, tasks pooled with equal weight; a row is a "
                  "prompt length, a column the tokens from the needle to the question. Falling along a row is "
                  "forgetting with distance (the decay horizon); falling down a column, at equal distance, is an "
                  "effect of the length itself (positions the base never saw, a state written by more tokens)."]
        for label, m in memories.items():
            bins = [b for b in distance_bins() if any(b in row for row in m["by_distance"].values())]
            lines += ["", f"{label}:", "", "| length | " + " | ".join(bins) + " |", "|---|" + "---:|" * len(bins)]
            for lv, row in m["by_distance"].items():
                cells = [f"{_fmt(_pt(row[b]))} (n={row[b]['n']})" if b in row else "" for b in bins]
                lines.append(f"| {lv} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ question 2


def _geometry(methods: Sequence[Method]) -> tuple[int, int]:
    """The sinks + window of the bounded methods (they must agree); the tiny presets' when there are none."""
    seen = {(m.sinks, m.window) for m in methods if m.window is not None}
    if len(seen) > 1:
        raise RunError(f"the bounded methods use different windows {sorted(seen)}: compare one geometry at a time")
    return next(iter(seen)) if seen else (TINY_SINKS, TINY_WINDOW)


def capacity_report(methods: Sequence[Method], n_boot: int = N_BOOT) -> dict:
    """Accuracy against k per method and length, on samples whose k needles all left the window."""
    sinks, window = _geometry(methods)
    out: dict[str, Any] = {"question": "capacity", "sinks": sinks, "window": window, "needle_span": NEEDLE_SPAN,
                           "methods": {}}
    lengths: set[int] = set()
    ks: set[int] = set()
    for m in methods:
        by: dict[tuple[int, int], list[float]] = {}
        excluded = 0
        for r in m.records:
            hit = CAPACITY_TASK.match(r["task"])
            if not hit or not is_scored(r):
                continue
            if not all_needles_outside(r, sinks, window):
                excluded += 1
                continue
            by.setdefault((_tokens(r), int(hit.group(1))), []).append(float(r["score"]))
        if not by:
            continue
        rows: dict[str, dict[str, Any]] = {}
        holds: dict[str, int | None] = {}
        for (n, k) in sorted(by):
            lengths.add(n)
            ks.add(k)
            rows.setdefault(_label(n), {})[str(k)] = asdict(_point([by[(n, k)]], m.label, str(n), str(k),
                                                                   n_boot=n_boot))
        for lv, row in rows.items():
            ok = [int(k) for k, p in row.items() if p["mean"] is not None and p["mean"] >= HALF]
            holds[lv] = max(ok) if ok else None
        out["methods"][m.label] = {"kind": m.kind, "by_length": rows, "largest_k_at_half": holds,
                                   "excluded_needle_in_window": excluded}
    if not out["methods"]:
        raise RunError("no scored synthetic/passkey_k* sample whose needles all left the window in these runs")
    out["lengths"] = [_label(n) for n in sorted(lengths)]
    out["ks"] = sorted(ks)
    return out


def capacity_markdown(rep: dict, source: str) -> str:
    ks = rep["ks"]
    lines = ["# Capacity of the fixed-size memory", "",
             f"k labelled pass keys (`synthetic/passkey_k{{k}}`), one asked; only samples whose every needle has left "
             f"the {rep['sinks']} sinks + {rep['window']} window view (needle span {rep['needle_span']} tokens) count. "
             "Greedy exact match, 95% bootstrap CI in brackets. \"Holds\" is the largest k still answered at >= 50%. "
             f"Produced by `python -m studies.check_round2 capacity` from the per-sample records under `{source}`."]
    for lv in rep["lengths"]:
        lines += ["", f"## {lv} tokens", "", "| method | " + " | ".join(f"k={k}" for k in ks) + " | holds |",
                  "|---|" + "---:|" * len(ks) + "---:|"]
        for label, m in rep["methods"].items():
            row = m["by_length"].get(lv)
            if row is None:
                continue
            cells = [f"{_fmt(_pt(row[str(k)]))} (n={row[str(k)]['n']})" if str(k) in row else "" for k in ks]
            held = m["largest_k_at_half"].get(lv)
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {held if held is not None else 'none'} |")
    dropped = {label: m["excluded_needle_in_window"] for label, m in rep["methods"].items()
               if m["excluded_needle_in_window"]}
    if dropped:
        lines += ["", "Left out because a needle was still in the window: "
                  + ", ".join(f"{k} {v}" for k, v in dropped.items()) + "."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ question 3


def kv_report(methods: Sequence[Method], training_length: int = 4096, n_boot: int = N_BOOT) -> dict:
    """Full attention's kv_retrieval accuracy within the training length; the bounded methods beyond the window."""
    sinks, window = _geometry(methods)
    kv = {m.label: {r["key"]: r for r in m.records if r["task"] == KV_TASK and is_scored(r)} for m in methods}
    kv = {k: v for k, v in kv.items() if v}
    if not kv:
        raise RunError(f"no scored {KV_TASK} sample in these runs")
    by_label = {m.label: m for m in methods if m.label in kv}
    out: dict[str, Any] = {"question": "exact recall (kv_retrieval)", "sinks": sinks, "window": window,
                           "training_length": training_length, "teacher_bar": TEACHER_BAR, "methods": {}}
    lengths = sorted({_tokens(r) for recs in kv.values() for r in recs.values()})
    out["lengths"] = [_label(n) for n in lengths]
    swa = next((m for m in by_label.values() if m.kind == "swa"), None)
    swa_scores = {k: float(r["score"]) for k, r in kv[swa.label].items()} if swa else {}
    for label, recs in kv.items():
        m = by_label[label]
        row: dict[str, Any] = {"kind": m.kind, "all": {}, "beyond_window": {}}
        for n in lengths:
            at = [r for r in recs.values() if _tokens(r) == n]
            row["all"][_label(n)] = {"tokens": n, **asdict(_point([[float(r["score"]) for r in at]], label, str(n),
                                                                  n_boot=n_boot))}
            beyond = [float(r["score"]) for r in at if all_needles_outside(r, sinks, window)]
            row["beyond_window"][_label(n)] = {"tokens": n, **asdict(_point([beyond], label, str(n), "out",
                                                                            n_boot=n_boot))}
            digits = [d for r in at if all_needles_outside(r, sinks, window) and (d := digits_right(r)) is not None]
            row["beyond_window"][_label(n)]["digits_right"] = float(np.mean(digits)) if digits else None
        # pooled where the teacher answers (up to the training length), so full attention's row is its own ceiling
        digits = [d for r in recs.values() if _tokens(r) <= training_length and all_needles_outside(r, sinks, window)
                  and (d := digits_right(r)) is not None]
        row["digits_right_beyond_window"] = asdict(_point([digits], label, "digits", n_boot=n_boot))
        if m.kind == "full":
            within = {lv: p for lv, p in row["all"].items() if p["tokens"] <= training_length}
            row["teacher_ok"] = bool(within) and all(p["mean"] is not None and p["mean"] >= TEACHER_BAR
                                                     for p in within.values())
        elif swa is not None and m is not swa:
            keys = sorted(k for k, r in recs.items() if k in swa_scores and all_needles_outside(r, sinks, window))
            if keys:
                mine = {k: float(r["score"]) for k, r in recs.items()}
                mean, lo, hi = paired_difference(mine, swa_scores, keys, row_seed(0, label, swa.label, "kv"), n_boot)
                row["vs_swa"] = {"n": len(keys), "difference": mean, "ci": [lo, hi], "beats": lo > 0}
        out["methods"][label] = row
    full = [r for r in out["methods"].values() if r["kind"] == "full"]
    out["teacher_ok"] = bool(full) and all(r["teacher_ok"] for r in full)
    return out


def kv_markdown(rep: dict, source: str) -> str:
    lengths = rep["lengths"]
    verdict = "reaches" if rep["teacher_ok"] else "does **not** reach"
    lines = ["# Exact recall of long strings: kv_retrieval", "",
             f"36-character keys, copy the 36-character value; greedy exact match, 95% bootstrap CI in brackets. Full "
             f"attention {verdict} {rep['teacher_bar']:.0%} at every length up to the base's training length "
             f"({rep['training_length']:,} tokens). Beyond the window: samples whose pair left the {rep['sinks']} + "
             f"{rep['window']} view; digits right: the share of the value's 32 hex digits the answer has in place on "
             f"those samples, pooled over the lengths up to the training length (a UUID-4-shaped guess that knows "
             f"nothing of the value gets about 1/16 of them, plus the two fixed ones). Produced by `python -m "
             f"studies.check_round2 kv` from the per-sample records under `{source}`.", "",
             "| method | " + " | ".join(f"{lv} all" for lv in lengths) + " | "
             + " | ".join(f"{lv} beyond window" for lv in lengths)
             + f" | digits right, beyond the window, up to {_label(rep['training_length'])} | vs sinks + window, beyond "
             "the window |",
             "|---|" + "---:|" * (2 * len(lengths) + 1) + "---|"]
    for label, m in rep["methods"].items():
        cells = [f"{_fmt(_pt(m['all'][lv]))} (n={m['all'][lv]['n']})" for lv in lengths]
        cells += [f"{_fmt(_pt(m['beyond_window'][lv]))} (n={m['beyond_window'][lv]['n']})"
                  if m["beyond_window"][lv]["n"] else "" for lv in lengths]
        digits = m.get("digits_right_beyond_window")
        cells.append(f"{_fmt(_pt(digits))} (n={digits['n']})" if digits and digits["n"] else "")
        vs = m.get("vs_swa")
        tail = (f"{vs['difference']:+.0%} [{vs['ci'][0]:+.0%}, {vs['ci'][1]:+.0%}] (n={vs['n']})" if vs else "")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {tail} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ figures


def _errorbar(ax, xs: list[float], points: list[dict], label: str, color, offset: float = 0.0) -> None:
    keep = [(x, p) for x, p in zip(xs, points) if p and p["mean"] is not None]
    if not keep:
        return
    x = np.array([k[0] for k in keep]) * (2 ** offset)
    mean = np.array([100 * k[1]["mean"] for k in keep])
    lo = np.array([100 * (k[1]["mean"] - k[1]["ci"][0]) if k[1]["ci"] else 0.0 for k in keep])
    hi = np.array([100 * (k[1]["ci"][1] - k[1]["mean"]) if k[1]["ci"] else 0.0 for k in keep])
    ax.errorbar(x, mean, yerr=[lo, hi], marker="o", ms=4, capsize=2, lw=1.4, color=color, label=label)


def _figure(draw: Callable[[Any, list], None], n_panels: int, title: str, out: Path, labels: list[str]) -> Path:
    from matplotlib.figure import Figure

    from harness.plots import _save, _style
    from harness.style import method_of, style_for

    with _style():
        fig = Figure(figsize=(4.6 * n_panels + 1.5, 4.2), layout="constrained")
        axes = [fig.add_subplot(1, n_panels, i + 1) for i in range(n_panels)]
        draw(axes, [style_for(method_of({}, label)).color for label in labels])  # a method's colour everywhere
        fig.suptitle(title)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), frameon=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        return _save(fig, out.parent, out.name, ("png", "svg"))[0]


def plot_length(rep: dict, out: Path) -> Path:
    labels = list(rep["methods"])

    def draw(axes, colors):
        ax = axes[0]
        for i, (label, color) in enumerate(zip(labels, colors)):
            rows = rep["methods"][label]["by_length"]
            xs = [row["tokens"] for row in rows.values()]
            _errorbar(ax, xs, list(rows.values()), label, color, offset=(i - len(labels) / 2) * 0.03)
        ax.set_xscale("log", base=2)
        ticks = sorted({row["tokens"] for m in rep["methods"].values() for row in m["by_length"].values()})
        ax.set_xticks(ticks, [_label(t) for t in ticks])
        ax.axhline(100 * HALF, color="0.6", lw=0.8, ls="--")
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-3, 105)

    return _figure(draw, 1, "Accuracy by length (95% bootstrap CI)", out, labels)


def plot_capacity(rep: dict, out: Path) -> Path:
    labels = list(rep["methods"])

    def draw(axes, colors):
        for ax, lv in zip(axes, rep["lengths"]):
            for i, (label, color) in enumerate(zip(labels, colors)):
                row = rep["methods"][label]["by_length"].get(lv, {})
                ks = sorted(int(k) for k in row)
                _errorbar(ax, ks, [row[str(k)] for k in ks], label, color, offset=(i - len(labels) / 2) * 0.03)
            ax.set_xscale("log", base=2)
            ax.set_xticks(rep["ks"], [str(k) for k in rep["ks"]])
            ax.axhline(100 * HALF, color="0.6", lw=0.8, ls="--")
            ax.set_title(f"{lv} tokens")
            ax.set_xlabel("pass keys in the evicted part (k)")
            ax.set_ylim(-3, 105)
        axes[0].set_ylabel("accuracy (%)")

    return _figure(draw, len(rep["lengths"]), f"Capacity: k needles beyond the {rep['sinks']} + {rep['window']} "
                   "window, one asked (95% bootstrap CI)", out, labels)


def plot_kv(rep: dict, out: Path) -> Path:
    labels = list(rep["methods"])

    def draw(axes, colors):
        for ax, part, name in ((axes[0], "all", "all samples"), (axes[1], "beyond_window", "pair beyond the window")):
            for i, (label, color) in enumerate(zip(labels, colors)):
                rows = rep["methods"][label][part]
                xs = [row["tokens"] for row in rows.values()]
                _errorbar(ax, xs, list(rows.values()), label, color, offset=(i - len(labels) / 2) * 0.03)
            ax.set_xscale("log", base=2)
            ticks = sorted({row["tokens"] for m in rep["methods"].values() for row in m[part].values()})
            ax.set_xticks(ticks, [_label(t) for t in ticks])
            ax.set_title(name)
            ax.set_xlabel("prompt length (tokens)")
            ax.set_ylim(-3, 105)
        axes[0].set_ylabel("accuracy (%)")

    return _figure(draw, 2, "kv_retrieval: exact copy of a 36-character value (95% bootstrap CI)", out, labels)


QUESTIONS: dict[str, tuple[Callable[..., dict], Callable[[dict, str], str], Callable[[dict, Path], Path]]] = {
    "length": (length_report, length_markdown, plot_length),
    "capacity": (capacity_report, capacity_markdown, plot_capacity),
    "kv": (kv_report, kv_markdown, plot_kv),
}


def write_report(question: str, root: Path | Sequence[Path], out: Path, **options: Any) -> dict:
    """Collect the runs under ``root``, answer ``question``; write ``<out>.json``, ``<out>.md`` and the figure."""
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r}; valid: {', '.join(QUESTIONS)}")
    report_fn, markdown_fn, plot_fn = QUESTIONS[question]
    methods = collect(root)
    rep = report_fn(methods, **options)
    roots = [root] if isinstance(root, (str, Path)) else list(root)
    source = ", ".join(Path(r).as_posix() for r in roots)
    rep["runs"] = [f for m in methods for f in m.folders]
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = plot_fn(rep, out)
    text = markdown_fn(rep, source) + f"\n![{question}]({figure.name})\n"
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
    return rep
