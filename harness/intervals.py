"""Confidence intervals of a mean score that stay honest at small sample counts.

Two kinds of metric, two intervals:

* **Binary** metrics (every score is 0 or 1: passkey retrieval, option parsing, exact-match verdicts) get the
  **Wilson score interval**. A percentile bootstrap of 4/4 correct answers resamples only ones and reports
  ``[100, 100]``; Wilson reports ``[51.0, 100]``. Wilson rather than Clopper–Pearson: Clopper–Pearson
  guarantees at least the nominal coverage by being conservative (``[39.8, 100]`` for 4/4, wider than needed
  at every n), while Wilson's coverage stays close to the nominal 95% on average over the success rate, which
  is what a reader of a score table assumes (Brown, Cai & DasGupta, Statistical Science 16(2), 2001, recommend
  it for small n). It needs no dependency: the closed form below.
* **Graded** metrics (F1, ROUGE, prefix ratios) get the seeded percentile **bootstrap** of the mean.

Whether a task's metric is binary is what its family declares (``TaskInfo.binary`` in ``tasks/family.py``);
for a task no family declares (records of a custom task), it is read off the values: binary when every
counted score is 0 or 1. A declared-binary task whose scores are not all 0 or 1 falls back to the bootstrap.

A row that averages several tasks with equal weights (LV-Eval's convention) gets Wilson with Kish's effective
sample size when every task in it is binary: ``n_eff = 1 / Σ w_i² / n_i`` with ``w_i = 1/k``, which is the
plain Wilson interval for one task and the pooled one when the tasks have equal counts; otherwise the
bootstrap stratified by task.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

WILSON = "wilson"
BOOTSTRAP = "bootstrap"
_BOOT_CHUNK_ELEMS = 4_000_000  # bound the bootstrap index matrix (~32 MB) whatever the sample count


def z_value(level: float) -> float:
    """The two-sided standard normal quantile of a confidence level (1.959964 for 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1 (exclusive), got {level!r}")
    return NormalDist().inv_cdf(1.0 - (1.0 - level) / 2.0)


def wilson_interval(p_hat: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p_hat`` observed over ``n`` trials (``n`` may be an effective,
    non-integer count). Bounds are clipped to [0, 1] (they lie there in exact arithmetic)."""
    if n <= 0:
        raise ValueError(f"the Wilson interval needs n > 0 trials, got {n!r}")
    if not 0.0 <= p_hat <= 1.0:
        raise ValueError(f"a proportion lies in [0, 1], got {p_hat!r}")
    z = z_value(level)
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p_hat + z2 / (2.0 * n)) / denom
    half = (z / denom) * math.sqrt(p_hat * (1.0 - p_hat) / n + z2 / (4.0 * n * n))
    # at p_hat = 0 (1) the lower (upper) bound is exactly 0 (1); rounding would leave it a hair inside, above
    # (below) the point estimate, and an error bar of negative length
    low = 0.0 if p_hat == 0.0 else max(0.0, centre - half)
    high = 1.0 if p_hat == 1.0 else min(1.0, centre + half)
    return low, high


def stratified_wilson(strata: Sequence[Sequence[float]], level: float = 0.95) -> tuple[float, float] | None:
    """Wilson interval of the unweighted mean of the strata's proportions, with Kish's effective sample size
    ``1 / Σ (1/k)² / n_i``; empty strata are ignored, None when nothing is left."""
    arrays = [np.asarray(s, dtype=np.float64) for s in strata]
    arrays = [a for a in arrays if a.size]
    if not arrays:
        return None
    k = len(arrays)
    p_hat = float(np.mean([a.mean() for a in arrays]))
    n_eff = 1.0 / sum(1.0 / (k * k * a.size) for a in arrays)
    return wilson_interval(min(1.0, max(0.0, p_hat)), n_eff, level)


def row_seed(seed: int, *labels: str) -> list[int]:
    """A per-row seed, so a row's CI does not depend on which other rows were computed before it."""
    return [seed, zlib.crc32("|".join(labels).encode("utf-8"))]


def bootstrap_ci(
    strata: Sequence[np.ndarray | Sequence[float]],
    n_boot: int = 1000,
    seed: int | Sequence[int] = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the unweighted mean of the strata's means.

    One stratum is the ordinary bootstrap of a mean. Several strata (tasks) are resampled independently,
    which matches how the statistic is built (each task's mean, then equal weights). Empty strata are
    ignored; None when nothing is left.
    """
    arrays = [np.asarray(s, dtype=np.float64) for s in strata]
    arrays = [a for a in arrays if a.size]
    if not arrays:
        return None
    rng = np.random.default_rng(seed)
    stats = np.zeros(n_boot)
    for a in arrays:
        n = a.size
        rows = max(1, _BOOT_CHUNK_ELEMS // n)
        for start in range(0, n_boot, rows):
            stop = min(n_boot, start + rows)
            idx = rng.integers(0, n, size=(stop - start, n))
            stats[start:stop] += a[idx].mean(axis=1)
    stats /= len(arrays)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def declared_binary(task: str) -> bool | None:
    """What the task's family declares about its metric (True: every score is 0 or 1); None when no registered
    family knows the task or it declares nothing."""
    from tasks.scoring.registry import resolve_task

    try:
        info = resolve_task(task)
    except ValueError:
        return None
    return getattr(info, "binary", None)


def all_zero_one(scores: Sequence[float] | np.ndarray) -> bool:
    values = np.asarray(scores, dtype=np.float64)
    return bool(values.size) and bool(np.all((values == 0.0) | (values == 1.0)))


def is_binary(task: str, scores: Sequence[float] | np.ndarray) -> bool:
    """Whether the Wilson interval applies to ``task``'s ``scores`` (0–1 scale): not when the family declares
    the metric graded; otherwise when every score is 0 or 1."""
    declared = declared_binary(task)
    if declared is False:
        return False
    return all_zero_one(scores)


def mean_ci(
    strata: dict[str, np.ndarray],
    n_boot: int,
    seed: int | Sequence[int],
    level: float,
    pooled: bool,
) -> tuple[tuple[float, float] | None, str | None]:
    """The CI of a row's mean score (0–1 scale) and the method that gave it (:data:`WILSON`, :data:`BOOTSTRAP`).

    ``strata`` maps each task to its counted scores; ``pooled`` rows average over samples (one stratum of all
    of them), the others over tasks with equal weights.
    """
    strata = {t: s for t, s in strata.items() if s.size}
    if not strata:
        return None, None
    parts = [np.concatenate(list(strata.values()))] if pooled else list(strata.values())
    if all(is_binary(t, s) for t, s in strata.items()):
        return stratified_wilson(parts, level), WILSON
    return bootstrap_ci(parts, n_boot=n_boot, seed=seed, level=level), BOOTSTRAP
