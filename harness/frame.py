"""Runs as pandas DataFrames, and a run exported in lm-evaluation-harness's results layout.

``pd.read_json("samples.jsonl", lines=True)`` guesses types: a prediction ``" 06292"`` becomes the number
``6292`` and the buckets ``"512"``, ``"1k"`` … become integers or sort alphabetically. :func:`load_run` reads the
records with :mod:`harness.store` (deduplicated, shards merged, torn lines ignored) and gives every known field
the dtype of :data:`RECORD_DTYPES`, the one table of the record's fields: text stays text, counts are nullable
integers, the bucket is an ordered categorical in length order. Fields not in the table are kept as Python
objects, untouched. :func:`frame_records` turns the frame back into the records (tested on every committed run).

:func:`to_lm_eval_results` writes a run the way ``lm_eval --output_path DIR --log_samples`` does
(``DIR/<model>/results_<date>.json`` and ``samples_<task>_<date>.jsonl``), so tools that read lm-eval's results
read ours. Each task × length bucket is an lm-eval task named ``<task>_<bucket>`` (``synthetic_passkey_1k``),
grouped under its task (``synthetic_passkey``); the metric is ``score`` (0–1, higher is better; each task's
config says ``score_scale``; the harness's own reports show it ×100) with lm-eval's standard error of
the mean. Samples carry lm-eval's three hashes: ``prompt_hash`` is the record's ``prompt_sha256`` (SHA-256 of
the prompt text as fed, lm-eval's definition); the target is the answers as JSON (``json.dumps(answers,
ensure_ascii=False, sort_keys=True)``), so ``target_hash`` equals the record's ``answers_sha256``; ``doc_hash``
is the SHA-256 of the exported ``doc`` as lm-eval computes it. Records written before the hashes existed export
``prompt_hash: null``. Failed samples are not exported (lm-eval has no such state); ``n-samples`` counts them in
``original``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.buckets import record_bucket, sort_buckets
from harness.store import MANIFEST, Run, RunError
from harness.store import load_run as load_records
from harness.summary import is_scored
from tasks.safe_write import UnsafeWriteError, safe_name, write_atomic

# The record's fields and their pandas dtypes. Fields a run lacks (older runs: the hashes) are columns of
# missing values; fields not listed are kept as Python objects.
RECORD_DTYPES: dict[str, str] = {
    "key": "string", "task": "string", "level": "string", "id": "string", "index": "Int64",
    "bucket": "bucket",  # ordered categorical, in length order (harness.buckets)
    "prompt_tokens_before": "Int64", "prompt_tokens": "Int64", "truncated": "boolean",
    "chat_template": "boolean", "max_new_tokens": "Int64", "answers": "object", "extra": "object",
    "prompt_sha256": "string", "input_ids_sha256": "string", "answers_sha256": "string",
    "flops_paper": "Int64", "flops_actual": "Int64", "flops_mixing_paper": "Int64",
    "flops_mixing_actual": "Int64", "cache_bytes_paper": "Int64", "cache_bytes_actual": "Int64",
    "params_extra": "Int64", "status": "string", "error": "string", "prediction": "string",
    "score": "Float64", "score_note": "string", "n_generated": "Int64", "prefill_s": "Float64",
    "decode_s": "Float64", "decode_s_per_token": "Float64", "peak_mem_bytes": "Int64",
    "cache_bytes_measured": "Int64", "cache_bytes_measured_final": "Int64", "wall_s": "Float64",
    "decode_batch": "Int64",
}
RUN_COLUMN = "run"  # the run's label (preset name), added first; an ordered categorical in load order
#: The scale of ``score`` here and in the exports (summaries, reports and figures show it x100).
SCORE_SCALE = "0-1"
METRIC = "score"
FILTER = "none"


# ---------------------------------------------------------------------------------------------- DataFrame


def run_folders(path: str | Path) -> list[Path]:
    """``path`` itself when it is a run folder, else its sub-folders that are runs (a multi-preset job's root)."""
    path = Path(path)
    if (path / MANIFEST).exists():
        return [path]
    subs = sorted(p for p in path.iterdir() if (p / MANIFEST).exists()) if path.is_dir() else []
    if not subs:
        raise RunError(f"{path}: neither a run folder (no {MANIFEST}) nor a folder of runs")
    return subs


def _column(name: str, values: list[Any], dtype: str, buckets: pd.CategoricalDtype) -> Any:
    if dtype == "bucket":
        return pd.Categorical(values, dtype=buckets)
    if dtype == "object":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    try:
        return pd.array(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        bad = next((v for v in values if v is not None), None)
        raise RunError(f"field {name!r} holds values that are not {dtype} (e.g. {bad!r}): {exc}") from None


def load_run(path: str | Path | Run | Sequence[str | Path]) -> pd.DataFrame:
    """One row per sample of a run folder (or of every run under a job's root, or of several folders).

    Columns: ``run`` (the label), then every field of :data:`RECORD_DTYPES` with its dtype, then any other
    field as objects. ``score`` is on 0–1, as recorded (summaries, reports and figures show it ×100;
    ``frame.attrs["score_scale"]`` says so). ``bucket`` is ordered by length across all the runs loaded.
    ``frame.attrs["manifests"]`` maps each label to its manifest.
    """
    if isinstance(path, Run):
        runs = [path]
    else:
        paths = [path] if isinstance(path, str | Path) else list(path)
        runs = [load_records(p) for item in paths for p in run_folders(item)]
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    for run in runs:
        labels.append(run.label)
        rows += [{RUN_COLUMN: run.label, **rec, "bucket": record_bucket(rec)} for rec in run.records]
    buckets = pd.CategoricalDtype(sort_buckets(r["bucket"] for r in rows), ordered=True)
    extra = sorted({k for r in rows for k in r} - set(RECORD_DTYPES) - {RUN_COLUMN})
    data: dict[str, Any] = {RUN_COLUMN: pd.Categorical([r[RUN_COLUMN] for r in rows],
                                                       categories=list(dict.fromkeys(labels)), ordered=True)}
    for name, dtype in RECORD_DTYPES.items():
        data[name] = _column(name, [r.get(name) for r in rows], dtype, buckets)
    for name in extra:
        data[name] = _column(name, [r.get(name) for r in rows], "object", buckets)
    frame = pd.DataFrame(data)
    frame.attrs["manifests"] = {run.label: run.manifest for run in runs}
    frame.attrs["score_scale"] = SCORE_SCALE
    return frame


def _plain(value: Any) -> Any:
    """A DataFrame cell as the JSON value it came from (missing -> None, numpy scalars -> Python)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as records again: ``run`` dropped, missing values as None (an absent field too)."""
    cols = [c for c in frame.columns if c != RUN_COLUMN]
    out = []
    for row in frame[cols].astype(object).itertuples(index=False, name=None):
        out.append({c: _plain(v) for c, v in zip(cols, row)})
    return out


# ---------------------------------------------------------------------------------------------- lm-eval export


def _sanitize_task(name: str) -> str:
    return re.sub(r"\W", "_", name)  # lm-eval's task-name rule for file names


def _sanitize_model(name: str) -> str:
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)  # lm-eval's model-name rule for folders


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def answers_text(answers: Any) -> str:
    """The exported target: the answers as JSON, whose SHA-256 is the record's ``answers_sha256``."""
    return json.dumps(answers, ensure_ascii=False, sort_keys=True)


def _metrics(scores: list[float]) -> dict[str, float]:
    """Mean and lm-eval's standard error of a mean (sample standard deviation / sqrt(n); none for one sample)."""
    out = {f"{METRIC},{FILTER}": float(np.mean(scores))}
    if len(scores) > 1:
        out[f"{METRIC}_stderr,{FILTER}"] = float(np.std(scores, ddof=1) / math.sqrt(len(scores)))
    return out


def _start(manifest: dict[str, Any]) -> datetime:
    text = (manifest.get("provenance") or {}).get("start_time")
    try:
        return datetime.fromisoformat(text) if text else datetime.fromtimestamp(0).astimezone()
    except ValueError:
        return datetime.fromtimestamp(0).astimezone()


def _sample(rec: dict[str, Any], doc_id: int) -> dict[str, Any]:
    doc = {k: rec.get(k) for k in ("key", "task", "level", "id", "bucket", "answers", "extra",
                                   "prompt_tokens_before", "prompt_tokens", "truncated", "input_ids_sha256")}
    target = answers_text(rec.get("answers"))
    return {
        "doc_id": doc_id, "doc": doc, "target": target,
        # the prompt text is not stored in a run; its hash is
        "arguments": {"gen_args_0": {"arg_0": None, "arg_1": {"until": [], "max_gen_toks": rec.get("max_new_tokens"),
                                                              "do_sample": False}}},
        "resps": [[rec.get("prediction")]], "filtered_resps": [rec.get("prediction")], "filter": FILTER,
        "metrics": [METRIC],
        "doc_hash": _sha256(json.dumps(doc, indent=2, ensure_ascii=False, default=str)),
        "prompt_hash": rec.get("prompt_sha256"), "target_hash": _sha256(target),
        METRIC: float(rec["score"]),
    }


def lm_eval_results(run: Run) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """A run as lm-eval's results dict and its per-task sample lists (the content of :func:`to_lm_eval_results`)."""
    manifest = run.manifest
    config = manifest.get("config") or {}
    prov = manifest.get("provenance") or {}
    by_task: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rec in run.records:
        by_task.setdefault(rec["task"], {}).setdefault(record_bucket(rec), []).append(rec)
    results: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    group_subtasks: dict[str, list[str]] = {}
    configs: dict[str, Any] = {}
    n_samples: dict[str, Any] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    for task in sorted(by_task):
        group = _sanitize_task(task)
        group_subtasks[group] = []
        all_scores: list[float] = []
        for bucket in sort_buckets(by_task[task]):
            recs = by_task[task][bucket]
            scored = [r for r in recs if is_scored(r)]
            name = _sanitize_task(f"{task}_{bucket}")
            group_subtasks[group].append(name)
            group_subtasks[name] = []
            n_samples[name] = {"original": len(recs), "effective": len(scored)}
            configs[name] = {"task": name, "tag": group, "output_type": "generate_until",
                             "harness_task": task, "bucket": bucket, "score_scale": SCORE_SCALE}
            samples[name] = [_sample(r, i) for i, r in enumerate(scored)]
            scores = [float(r["score"]) for r in scored]
            all_scores += scores
            if scores:
                results[name] = {"alias": f"{task} @ {bucket}", "name": name, "sample_len": len(scores),
                                 **_metrics(scores)}
        if all_scores:
            groups[group] = {"alias": task, "name": group, "sample_len": len(all_scores), **_metrics(all_scores)}
            results[group] = dict(groups[group])
    names = list(results)
    label = run.label
    start = _start(manifest)
    total = sum(float(r.get("wall_s") or 0.0) for r in run.records)
    out = {
        "results": results, "groups": groups, "group_subtasks": group_subtasks, "configs": configs,
        "versions": {n: None for n in names}, "n-shot": {n: 0 for n in names},
        "higher_is_better": {n: {METRIC: True} for n in names}, "n-samples": n_samples,
        "config": {"model": "ahn-harness", "model_args": f"preset={label}", "batch_size": "1", "batch_sizes": [],
                   "device": None, "use_cache": None, "limit": config.get("limit"), "bootstrap_iters": 0,
                   "gen_kwargs": None, "random_seed": config.get("seed"), "model_dtype": config.get("dtype")},
        "git_hash": ((prov.get("git") or {}).get("revision") or "")[:7] or None,
        "date": start.timestamp(),
        "transformers_version": (prov.get("versions") or {}).get("transformers"),
        "model_source": "ahn-harness", "model_name": label, "model_name_sanitized": _sanitize_model(label),
        "system_instruction": None, "system_instruction_sha": None, "fewshot_as_multiturn": False,
        "chat_template": None, "chat_template_sha": None, "task_hashes": {},
        "total_evaluation_time_seconds": str(total),
    }
    # lm-eval's schema types these as str / int: leave a key out rather than write null
    for key in ("git_hash", "transformers_version"):
        if out[key] is None:
            del out[key]
    for key in ("random_seed", "model_dtype"):
        if out["config"][key] is None:
            del out["config"][key]
    return out, samples


def to_lm_eval_results(path: str | Path | Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Write each run under ``path`` as ``out_dir/<label>/results_<date>.json`` + ``samples_<task>_<date>.jsonl``
    (lm-eval's ``--output_path`` layout, the date being the run's start time); returns the files written."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    written: list[Path] = []
    for folder in (p for item in paths for p in run_folders(item)):
        run = load_records(folder)
        results, samples = lm_eval_results(run)
        date_id = _start(run.manifest).replace(tzinfo=None).isoformat().replace(":", "-")
        target = Path(out_dir) / safe_name(results["model_name_sanitized"], "run label")
        target.mkdir(parents=True, exist_ok=True)
        res_path = target / f"results_{date_id}.json"
        write_atomic(res_path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        written.append(res_path)
        for name, rows in samples.items():
            sp = target / safe_name(f"samples_{name}_{date_id}.jsonl", "task name")
            write_atomic(sp, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            written.append(sp)
    return written


def main(argv: list[str] | None = None) -> int:
    """``harness export-lm-eval RUN… --output DIR``."""
    parser = argparse.ArgumentParser(prog="harness export-lm-eval",
                                     description="Write runs in lm-evaluation-harness's results layout.")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, or a job's root holding several")
    parser.add_argument("--output", type=Path, required=True, help="folder (one sub-folder per run)")
    args = parser.parse_args(argv)
    try:
        for p in to_lm_eval_results(args.runs, args.output):
            if p.name.startswith("results_"):
                print(p)
    except (RunError, UnsafeWriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
