"""Scores of paper-preset runs in the shape the paper's tables take: {base: {row: {dataset: score×100}}}."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.store import load_run
from harness.summary import summarize


def collect_paper_results(run_dirs: Sequence[str | Path]) -> dict[str, dict[str, dict[str, float]]]:
    """LV-Eval datasets at 128k (official or AHN-paper protocol) and the two InfiniteBench QA tasks."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for run_dir in run_dirs:
        run = load_run(run_dir)
        config = run.manifest.get("config")
        preset = config.get("preset") if isinstance(config, dict) else None
        base, row = (preset.get("base"), preset.get("paper_row")) if isinstance(preset, dict) else (None, None)
        if not base or not row:
            raise ValueError(f"{run_dir}: not a run of a paper preset (qwen2.5-3b, ahn-gdn-3b, …)")
        scores = out.setdefault(base, {}).setdefault(row, {})
        for r in summarize(run.records):
            if r["scope"] not in ("cell", "task") or r["score"] is None:
                continue
            family, _, name = r["task"].partition("/")
            if family in ("lveval", "ahn-paper") and r["bucket"] == "128k":
                scores[name.removeprefix("lveval_")] = round(r["score"], 2)
            elif family == "ahn-paper" and name.startswith("longbook_qa") and r["scope"] == "task":
                scores[name] = round(r["score"], 2)
    return out
