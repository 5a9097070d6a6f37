"""Prefill and decode seconds per sample, per method and length bucket, from run records, with the device named.

    python -m bench.speed_table runs/coder --lengths 32k,128k

Every number is read from the per-sample records (`prefill_s`, `decode_s`, `decode_batch`, `n_generated`) and
the device from the manifest's hardware (and its resumes'). A batched decode (`--decode static`) records the
batch's decode time on each of its samples, so the table shows that time and the batch size beside it and,
as the per-sample share, the batch's time divided by its size. Failed samples are counted, not timed.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.store import Run, load_run


@dataclass(frozen=True)
class SpeedRow:
    method: str
    device: str
    bucket: str
    n_ok: int
    n_failed: int
    prompt_tokens: float | None  # mean
    prefill_s: float | None  # mean
    prefill_s_median: float | None
    decode_s: float | None  # mean of the recorded decode time (the batch's, when batched)
    decode_batch: float | None  # mean batch size
    decode_s_per_sample: float | None  # mean of decode_s / decode_batch
    decode_s_per_token: float | None  # mean


def device_of(hardware: dict[str, Any] | None) -> str:
    """`2x NVIDIA H100 80GB HBM3`, or `CPU: <model> (N cores usable)`, from a manifest's hardware block."""
    hw = hardware or {}
    names = hw.get("gpu_names") or []
    if hw.get("gpu_count"):
        distinct = sorted(set(names))
        return " + ".join(f"{names.count(n)}x {n}" if names.count(n) > 1 else n for n in distinct)
    cores = hw.get("cpu_usable") or hw.get("cpu_count")
    return f"CPU: {hw.get('cpu_name') or '?'}" + (f" ({cores} cores usable)" if cores else "")


def run_device(manifest: dict[str, Any]) -> str:
    """The device a run ran on; every device named when a resume ran elsewhere."""
    seen = [device_of((manifest.get("provenance") or {}).get("hardware"))]
    seen += [device_of(r.get("hardware")) for r in manifest.get("resumes") or []]
    return " / then ".join(dict.fromkeys(seen))


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, int | float)]
    return statistics.fmean(vals) if vals else None


def _median(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, int | float)]
    return statistics.median(vals) if vals else None


def speed_rows(runs: Sequence[Run], lengths: Sequence[str] | None = None) -> list[SpeedRow]:
    """One row per run and length bucket (only the buckets in `lengths` when given, in that order)."""
    rows = []
    for run in runs:
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        for rec in run.records:
            bucket = str(rec.get("bucket") or rec.get("level") or "?")
            by_bucket.setdefault(bucket, []).append(rec)
        order = [b for b in lengths if b in by_bucket] if lengths else list(by_bucket)
        device = run_device(run.manifest)
        for bucket in order:
            recs = by_bucket[bucket]
            ok = [r for r in recs if r.get("status") == "ok"]
            per_sample = [r["decode_s"] / (r.get("decode_batch") or 1) for r in ok
                          if isinstance(r.get("decode_s"), int | float)]
            rows.append(SpeedRow(
                method=run.label, device=device, bucket=bucket, n_ok=len(ok), n_failed=len(recs) - len(ok),
                prompt_tokens=_mean(r.get("prompt_tokens") for r in ok),
                prefill_s=_mean(r.get("prefill_s") for r in ok), prefill_s_median=_median(r.get("prefill_s") for r in ok),
                decode_s=_mean(r.get("decode_s") for r in ok), decode_batch=_mean(r.get("decode_batch") for r in ok),
                decode_s_per_sample=_mean(per_sample),
                decode_s_per_token=_mean(r.get("decode_s_per_token") for r in ok),
            ))
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def speed_markdown(rows: Sequence[SpeedRow]) -> str:
    """The rows as a markdown table."""
    head = ("| method | device | length | samples ok (failed) | prompt tokens | prefill s (mean) | prefill s "
            "(median) | decode s (recorded) | decode batch | decode s per sample | decode s per token |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r.method} | {r.device} | {r.bucket} | {r.n_ok} ({r.n_failed}) | {_fmt(r.prompt_tokens, 0)} | "
                     f"{_fmt(r.prefill_s)} | {_fmt(r.prefill_s_median)} | {_fmt(r.decode_s)} | "
                     f"{_fmt(r.decode_batch, 1)} | {_fmt(r.decode_s_per_sample)} | {_fmt(r.decode_s_per_token, 4)} |")
    return "\n".join(lines)


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """The run folders at or one level below each path (a multi-preset `harness run --output` holds one per
    preset)."""
    found = []
    for path in paths:
        if (path / "manifest.json").is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if (p / "manifest.json").is_file())
        else:
            raise ValueError(f"{path}: no such folder")
    if not found:
        raise ValueError(f"no run folders (folders with a manifest.json) in {', '.join(map(str, paths))}")
    return found


def speed_table(paths: Sequence[Path], lengths: Sequence[str] | None = None) -> str:
    return speed_markdown(speed_rows([load_run(p) for p in find_runs(paths)], lengths))


__all__ = ["SpeedRow", "device_of", "find_runs", "run_device", "speed_markdown", "speed_rows", "speed_table"]
