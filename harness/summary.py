"""Per task × length bucket summaries of a run: score with a 95% CI and its sample count, and what it cost.

Everything is derived from the per-sample lines, so a summary can always be recomputed.

Conventions (stated in every written summary):

* Scores are reported ×100. A sample counts when ``status`` is ``ok`` (or absent) and ``score`` is a finite
  number; the others are counted in ``n_failed`` and excluded from every mean, cost means included.
* Row scopes: ``cell`` (one task at one bucket) and ``task`` (one task, bucket ``all``) average over samples.
  ``family-bucket`` (e.g. ``lveval/*`` at ``16k``), ``family`` (``lveval/*`` at ``all``) and ``overall``
  (``all`` at ``all``) are unweighted means over tasks of each task's sample mean: LV-Eval's convention (a
  level's score = unweighted mean of its datasets) and the AHN paper's "avg" columns. ``score_pooled`` (the
  plain mean over samples) is given beside it in every row.
* The 95% CI (``ci_method`` names it; :mod:`harness.intervals` says why): the Wilson score interval when every
  task in the row has a binary metric (every score 0 or 1), with Kish's effective sample size for a mean over
  tasks; otherwise a seeded percentile bootstrap (default 1,000 resamples), stratified by task for a mean over
  tasks. ``n`` (counted samples) stands beside every interval.
* Cost columns are plain means over the row's counted samples; ``decode_s_per_token`` is total decode time
  over total generated tokens (a ratio of sums, so short answers do not dominate).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness.buckets import ALL, record_bucket, sort_buckets
from harness.intervals import (
    bootstrap_ci,  # noqa: F401 (compare and claims import it from here)
    mean_ci,
    row_seed,
)
from harness.store import load_run
from tasks.safe_write import write_atomic

N_BOOT = 1000
CI_LEVEL = 0.95
COST_FIELDS = (
    "flops_paper",
    "flops_actual",
    "cache_bytes_paper",
    "cache_bytes_actual",
    "cache_bytes_measured",
)

NOTES = [
    "Scores are x100 here (records, harness.load_run frames and lm-eval exports keep 0-1). Failed samples "
    "(status != ok or no numeric score) are counted in n_failed and excluded from every mean, cost means "
    "included.",
    "cell and task rows average over samples; family-bucket, family and overall rows are unweighted means "
    "over tasks (LV-Eval convention); score_pooled is the plain mean over samples.",
    "95% CI: Wilson score interval where every task in the row has a binary metric (scores 0 or 1; Kish's "
    "effective n for means over tasks), else a seeded percentile bootstrap, stratified by task for means over "
    "tasks; the CI column names the method and n, the number of counted samples.",
]
SCORE_SCALE = "x100"  # summaries, reports and figures; records, frames and lm-eval exports keep 0-1


# ---------------------------------------------------------------------------------------------- helpers


def task_family(task: str) -> str:
    """``lveval/factrecall_en`` -> ``lveval``."""
    return task.split("/", 1)[0]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def is_scored(record: dict[str, Any]) -> bool:
    """Whether a sample enters the means: status ok (or absent) and a finite numeric score."""
    return record.get("status", "ok") == "ok" and _num(record.get("score")) is not None


def _mean(values: Iterable[Any]) -> float | None:
    xs = [v for v in (_num(x) for x in values) if v is not None]
    return float(np.mean(xs)) if xs else None


def _median(values: Iterable[Any]) -> float | None:
    xs = [v for v in (_num(x) for x in values) if v is not None]
    return float(np.median(xs)) if xs else None


def _max(values: Iterable[Any]) -> float | None:
    xs = [v for v in (_num(x) for x in values) if v is not None]
    return float(max(xs)) if xs else None


def _costs(ok: list[dict[str, Any]]) -> dict[str, Any]:
    """Length and cost columns over the counted samples of a row."""
    dec = [(r.get("decode_s"), r.get("n_generated")) for r in ok]
    dec = [(_num(d), _num(g)) for d, g in dec]
    dec = [(d, g) for d, g in dec if d is not None and g is not None and g > 0]
    gen = sum(g for _, g in dec)
    out: dict[str, Any] = {
        "prompt_tokens_before": _mean(r.get("prompt_tokens_before") for r in ok),
        "prompt_tokens": _mean(r.get("prompt_tokens") for r in ok),
        "truncated_frac": _mean(float(bool(r["truncated"])) for r in ok if r.get("truncated") is not None),
        "prefill_s_mean": _mean(r.get("prefill_s") for r in ok),
        "prefill_s_median": _median(r.get("prefill_s") for r in ok),
        "decode_s_per_token": (sum(d for d, _ in dec) / gen) if gen else None,
        "peak_mem_bytes_mean": _mean(r.get("peak_mem_bytes") for r in ok),
        "peak_mem_bytes_max": _max(r.get("peak_mem_bytes") for r in ok),
    }
    for name in COST_FIELDS:
        out[name] = _mean(r.get(name) for r in ok)
    return out


def _row(
    task: str,
    bucket: str,
    scope: str,
    groups: dict[str, list[dict[str, Any]]],
    n_failed: int,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """One summary row; ``groups`` maps each task in the row to its counted samples."""
    unit = {t: np.array([float(r["score"]) for r in rs]) for t, rs in groups.items() if rs}  # 0-1 scale
    strata = {t: s * 100.0 for t, s in unit.items()}
    ok = [r for rs in groups.values() for r in rs]
    agg = "samples" if scope in ("cell", "task") else "tasks"
    score = pooled = None
    ci: tuple[float, float] | None = None
    method = None
    if strata:
        pooled = float(np.mean(np.concatenate(list(strata.values()))))
        score = pooled if agg == "samples" else float(np.mean([s.mean() for s in strata.values()]))
        ci, method = mean_ci(unit, n_boot, row_seed(seed, task, bucket), CI_LEVEL, pooled=agg == "samples")
        ci = (100.0 * ci[0], 100.0 * ci[1]) if ci else None
    return {
        "task": task,
        "bucket": bucket,
        "scope": scope,
        "agg": agg,
        "n": len(ok),
        "n_failed": n_failed,
        "n_tasks": len(strata),
        "score": score,
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "ci_method": method,
        "score_pooled": pooled,
        **_costs(ok),
    }


# ---------------------------------------------------------------------------------------------- API


def summarize(records: Iterable[dict[str, Any]], n_boot: int = N_BOOT, seed: int = 0) -> list[dict[str, Any]]:
    """Summary rows: every task × bucket, every task, every family × bucket and family, and overall.

    Order: tasks by name (their buckets in length order, then ``all``), then each family's rows, then the
    overall row. See the module docstring for the averaging conventions.
    """
    ok: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    failed: dict[tuple[str, str], int] = defaultdict(int)
    for rec in records:
        cell = (str(rec.get("task") or "unknown"), record_bucket(rec))
        if is_scored(rec):
            ok[cell].append(rec)
        else:
            failed[cell] += 1
    cells = set(ok) | set(failed)
    tasks = sorted({t for t, _ in cells})
    buckets_of = {t: sort_buckets(b for tt, b in cells if tt == t) for t in tasks}
    rows: list[dict[str, Any]] = []

    def fails(pred: Any) -> int:
        return sum(n for cell, n in failed.items() if pred(cell))

    for t in tasks:
        for b in buckets_of[t]:
            rows.append(_row(t, b, "cell", {t: ok.get((t, b), [])}, failed.get((t, b), 0), n_boot, seed))
        all_t = [r for b in buckets_of[t] for r in ok.get((t, b), [])]
        rows.append(_row(t, ALL, "task", {t: all_t}, fails(lambda c, t=t: c[0] == t), n_boot, seed))

    families = sorted({task_family(t) for t in tasks})
    for fam in families:
        ftasks = [t for t in tasks if task_family(t) == fam]
        label = f"{fam}/*"
        for b in sort_buckets(b for t in ftasks for b in buckets_of[t]):
            groups = {t: ok.get((t, b), []) for t in ftasks}
            n_f = fails(lambda c, b=b, ft=ftasks: c[1] == b and c[0] in ft)
            rows.append(_row(label, b, "family-bucket", groups, n_f, n_boot, seed))
        groups = {t: [r for b in buckets_of[t] for r in ok.get((t, b), [])] for t in ftasks}
        rows.append(_row(label, ALL, "family", groups, fails(lambda c, ft=ftasks: c[0] in ft), n_boot, seed))

    if tasks:
        groups = {t: [r for b in buckets_of[t] for r in ok.get((t, b), [])] for t in tasks}
        rows.append(_row(ALL, ALL, "overall", groups, sum(failed.values()), n_boot, seed))
    return rows


# ---------------------------------------------------------------------------------------------- formatting

_SI = [(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]


def si(value: float | None, unit: str = "", digits: int = 3) -> str:
    """Decimal SI formatting (the paper's PF = 1e15 FLOPs, GB = 1e9 bytes): ``1.93e10, 'B'`` -> ``19.3 GB``."""
    if value is None:
        return "–"
    for scale, prefix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}".rstrip()
    return f"{value:.{digits}g} {unit}".rstrip()


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)


def _tokens(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def _visible(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that only repeat another are left out of tables: family rows of a one-task family, and the
    family total when there is one family (the overall row says the same)."""
    one_family = sum(r["scope"] == "family" for r in rows) == 1
    return [
        r for r in rows
        if not (r["scope"] in ("family", "family-bucket") and r["n_tasks"] <= 1)
        and not (one_family and r["scope"] == "family")
    ]


_CI_NAMES = {"wilson": "Wilson", "bootstrap": "bootstrap"}


def format_ci(row: dict[str, Any], digits: int = 1) -> str:
    """A row's interval with its sample count and method: ``[51.0, 100.0] (n=4, Wilson)``; ``–`` when none."""
    if row.get("ci_low") is None:
        return "–"
    how = _CI_NAMES.get(row.get("ci_method") or "", row.get("ci_method") or "")
    bounds = f"[{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"
    return f"{bounds} (n={row['n']}" + (f", {how})" if how else ")")


def format_table(rows: list[dict[str, Any]]) -> str:
    """A readable markdown table of summary rows (family rows of one-task families omitted)."""
    header = [
        "task", "bucket", "n", "failed", "score (×100)", "95% CI (n, method)", "prompt tok (before / fed)",
        "prefill s (mean / med)",
        "decode ms/tok", "peak mem", "FLOPs paper / actual", "cache paper / actual / measured",
    ]
    align = ["---", "---"] + ["---:"] * (len(header) - 2)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for r in _visible(rows):
        ci = format_ci(r)
        bold = r["scope"] in ("task", "family", "overall")
        score = _f(r["score"])
        dpt = r["decode_s_per_token"]
        cells = [
            r["task"], r["bucket"], str(r["n"]), str(r["n_failed"]) if r["n_failed"] else "",
            f"**{score}**" if bold and r["score"] is not None else score, ci,
            f"{_tokens(r['prompt_tokens_before'])} / {_tokens(r['prompt_tokens'])}",
            f"{_f(r['prefill_s_mean'])} / {_f(r['prefill_s_median'])}",
            _f(dpt * 1000 if dpt is not None else None, ".1f"),
            si(r["peak_mem_bytes_max"], "B"),
            f"{si(r['flops_paper'])} / {si(r['flops_actual'])}",
            f"{si(r['cache_bytes_paper'], 'B')} / {si(r['cache_bytes_actual'], 'B')} / "
            f"{si(r['cache_bytes_measured'], 'B')}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_summary(run_dir: Path | str, n_boot: int = N_BOOT, seed: int = 0) -> tuple[Path, Path]:
    """Recompute a run's summary and write ``summary.json`` and ``summary.md`` beside its samples."""
    run = load_run(run_dir)
    rows = summarize(run.records, n_boot=n_boot, seed=seed)
    n_failed = sum(1 for r in run.records if not is_scored(r))
    doc = {
        "label": run.label,
        "config_hash": run.manifest.get("config_hash"),
        "n_samples": len(run.records),
        "n_failed": n_failed,
        "n_boot": n_boot,
        "seed": seed,
        "ci_level": CI_LEVEL,
        "score_scale": SCORE_SCALE,
        "notes": NOTES,
        "rows": rows,
    }
    out = Path(run_dir)
    json_path, md_path = out / "summary.json", out / "summary.md"
    write_atomic(json_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    overall = next((r for r in rows if r["scope"] == "overall"), None)
    head = [
        f"# Summary: {run.label}",
        "",
        f"- run: `{out}`; config hash `{str(run.manifest.get('config_hash') or '?')[:12]}`",
        f"- samples: {len(run.records)} ({n_failed} failed)",
    ]
    if overall and overall["score"] is not None:
        head.append(
            f"- overall score: **{overall['score']:.2f}** "
            f"(×100; 95% CI {overall['ci_low']:.2f} to {overall['ci_high']:.2f}, "
            f"{_CI_NAMES.get(overall['ci_method'])}, "
            f"n={overall['n']}; mean over {overall['n_tasks']} task(s))"
        )
    body = "\n".join(head + ["", format_table(rows), "", *[f"- {n}" for n in NOTES]]) + "\n"
    write_atomic(md_path, body)
    return json_path, md_path
