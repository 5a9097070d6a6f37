"""Side-by-side report of several runs (one per method): scores per length bucket, then what each costs.

Everything is derived from the runs' per-sample lines (via `harness.summary`), so it can be recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.buckets import sort_buckets
from harness.store import load_run
from harness.style import method_of, sort_key
from harness.summary import SCORE_SCALE, format_ci, si, summarize


def _cells(rows: list[dict[str, Any]], scopes: tuple[str, ...]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["task"], r["bucket"]): r for r in rows if r["scope"] in scopes}


def comparison_markdown(run_dirs: Sequence[str | Path]) -> tuple[str, dict[str, Any]]:
    """Markdown (and the same numbers as a dict) comparing runs bucket by bucket."""
    runs = [load_run(d) for d in run_dirs]
    # methods in the paper's row order, as in the figures (harness.style), whatever order the folders came in
    runs.sort(key=lambda r: sort_key(method_of(r.manifest, r.label), r.label))
    labels = [r.label for r in runs]
    summaries = [summarize(r.records) for r in runs]
    cells = [_cells(s, ("cell", "task", "family-bucket", "family", "overall")) for s in summaries]
    keys = sorted({k for c in cells for k in c}, key=lambda k: (k[0] == "all", k[0], k[1] == "all"))
    tasks = sorted({t for t, _ in keys if t != "all"})
    lines = ["## Score ×100 by task and length bucket", "",
             "Each cell: the mean score ×100, its 95% CI, the number of counted samples n and the interval's "
             "method (Wilson where every task in the row has a binary metric, scores 0 or 1; else a percentile "
             "bootstrap; `harness/intervals.py`).", "",
             "| task | bucket | " + " | ".join(labels) + " |", "|---|---|" + "---:|" * len(labels)]
    data: dict[str, Any] = {"labels": labels, "score_scale": SCORE_SCALE, "scores": {}, "intervals": {},
                            "costs": {}}
    for task in tasks + ["all"]:
        buckets = sort_buckets({b for t, b in keys if t == task})
        for bucket in buckets:
            row = []
            for label, c in zip(labels, cells):
                r = c.get((task, bucket))
                if r is None or r["score"] is None:
                    row.append("–")
                    continue
                data["scores"].setdefault(f"{task}|{bucket}", {})[label] = r["score"]
                data["intervals"].setdefault(f"{task}|{bucket}", {})[label] = {
                    "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n": r["n"], "ci_method": r["ci_method"]}
                row.append(f"{r['score']:.1f} {format_ci(r)}")
            bold = bucket == "all"
            name = f"**{task}**" if bold else task
            lines.append(f"| {name} | {bucket} | " + " | ".join(row) + " |")
    lines += ["", "## Cost per length bucket (means over samples)", "",
              "| bucket | method | prompt tokens | cache measured | cache actual (model) | cache paper (4 B/elt) "
              "| FLOPs actual | FLOPs paper | prefill s | decode ms/token |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    overall_buckets = sort_buckets({b for c in cells for (t, b) in c if t == "all" or t.endswith("/*")} or
                                   {b for c in cells for (_, b) in c})
    for bucket in overall_buckets:
        for label, summary in zip(labels, summaries):
            rows = [r for r in summary if r["bucket"] == bucket and r["scope"] in ("cell",)]
            if not rows:
                continue
            n = sum(r["n"] for r in rows) or 1

            def mean(field: str, rows: list[dict[str, Any]] = rows, n: int = n) -> float | None:
                vals = [(r[field], r["n"]) for r in rows if r.get(field) is not None]
                return sum(v * k for v, k in vals) / n if vals else None

            costs = {f: mean(f) for f in ("prompt_tokens", "cache_bytes_measured", "cache_bytes_actual",
                                          "cache_bytes_paper", "flops_actual", "flops_paper", "prefill_s_mean",
                                          "decode_s_per_token")}
            data["costs"].setdefault(bucket, {})[label] = costs
            dpt = costs["decode_s_per_token"]
            lines.append(
                f"| {bucket} | {label} | {costs['prompt_tokens'] or 0:.0f} | {si(costs['cache_bytes_measured'], 'B')} | "
                f"{si(costs['cache_bytes_actual'], 'B')} | {si(costs['cache_bytes_paper'], 'B')} | "
                f"{si(costs['flops_actual'])} | {si(costs['flops_paper'])} | "
                f"{(costs['prefill_s_mean'] or 0):.3f} | {(dpt or 0) * 1000:.1f} |")
    return "\n".join(lines) + "\n", data


def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """`report.md`, `report.json` and the plots for these runs into `out_dir`."""
    from harness.plots import plot_runs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, data = comparison_markdown(run_dirs)
    plots = plot_runs(run_dirs, out / "plots")
    pics = "\n".join(f"![{p.stem}](plots/{p.name})" for p in plots if p.suffix == ".png")
    from tasks.safe_write import write_atomic

    write_atomic(out / "report.md", f"# Comparison of {len(run_dirs)} runs\n\n{md}\n## Plots\n\n{pics}\n")
    write_atomic(out / "report.json", json.dumps(data, indent=2) + "\n")
    return [out / "report.md", out / "report.json", *plots]
