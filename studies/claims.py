"""The paper's qualitative claims, checked on a comparison run of sinks + window methods against full attention.

A claim is read off per-sample records, never off a summary, so every number can be traced to samples:

1. every AHN beats sinks + sliding window on retrieval whose needle has left the window, by more than the 95%
   CI of the paired difference (bootstrap over the same samples scored by both);
2. CT pooling lands in between or below (its accuracy there is at most the weakest AHN's);
3. the cache of every bounded method stays flat once prompts exceed sinks + window, while full attention's grows
   linearly (bytes per prompt token constant);
4. full attention is near-perfect within its training length.

"Needle outside the window": its first token is not a sink and lies at least ``NEEDLE_SPAN`` tokens before the
last ``window`` prompt tokens, so the whole needle line has left the window when the first answer token is
predicted. Records without a needle offset (non-synthetic tasks) are not counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.store import Run, load_run
from harness.summary import CI_LEVEL, N_BOOT, bootstrap_ci, is_scored, row_seed

NEEDLE_SPAN = 64  # tokens a needle line spans at most (bytes in the tiny world's tokenizer)
NEAR_PERFECT = 0.95
FLAT_TOLERANCE = 0.02  # largest / smallest mean cache over the buckets past sinks + window
LINEAR_TOLERANCE = 0.05  # spread of full attention's cache bytes per prompt token


@dataclass
class Claim:
    name: str
    holds: bool
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)


def _method(run: Run) -> dict[str, Any]:
    return run.manifest.get("config", {}).get("method", {})


def _kind(run: Run) -> str:
    return str(_method(run).get("method", run.label))


def needle_outside(record: dict[str, Any], sinks: int, window: int) -> bool | None:
    """Whether the needle has left the sinks + window view at the first answer token (None: no needle offset)."""
    offset = (record.get("extra") or {}).get("needle_token_offset")
    if offset is None or record.get("prompt_tokens") is None:
        return None
    return offset >= sinks and offset + NEEDLE_SPAN <= record["prompt_tokens"] - window


def _scores(run: Run) -> dict[str, float]:
    return {r["key"]: float(r["score"]) for r in run.records if is_scored(r)}


def paired_difference(a: dict[str, float], b: dict[str, float], keys: Sequence[str], seed: Sequence[int],
                      n_boot: int = N_BOOT, level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean of a - b over ``keys`` and its bootstrap CI (samples resampled in pairs, as `harness compare` does)."""
    d = np.array([a[k] - b[k] for k in keys], dtype=np.float64)
    lo, hi = bootstrap_ci([d], n_boot=n_boot, seed=seed, level=level)
    return float(d.mean()), lo, hi


def flat_cache_claim(label: str, tokens: dict[str, float], cache: dict[str, float], sinks: int,
                     window: int) -> Claim | None:
    """"<label>'s cache stays flat": the largest over the smallest mean cache of the length buckets whose prompts
    reach past sinks + window (+ ``NEEDLE_SPAN``) within ``FLAT_TOLERANCE``; None with fewer than two such buckets."""
    past = [b for b in cache if tokens[b] > sinks + window + NEEDLE_SPAN]
    if len(past) < 2:
        return None
    ratio = max(cache[b] for b in past) / min(cache[b] for b in past)
    return Claim(f"{label}'s cache stays flat", ratio - 1 <= FLAT_TOLERANCE,
                 f"{min(cache[b] for b in past) / 1e6:.2f}–{max(cache[b] for b in past) / 1e6:.2f} MB over buckets "
                 f"{', '.join(sorted(past, key=lambda b: tokens[b]))}", {"ratio": ratio})


def _bucket_means(run: Run, field_name: str) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for r in run.records:
        if r.get("status") == "ok" and r.get(field_name) is not None:
            by.setdefault(str(r["bucket"]), []).append(float(r[field_name]))
    return {b: float(np.mean(v)) for b, v in by.items()}


def check_claims(runs: Sequence[Run], training_length: int, n_boot: int = N_BOOT) -> list[Claim]:
    """The four claims on runs that include one `full`, one `swa` and at least one `ahn-*` method."""
    by_kind: dict[str, Run] = {}
    for run in runs:
        by_kind.setdefault(_kind(run), run)
    missing = [k for k in ("full", "swa") if k not in by_kind]
    ahns = [r for r in runs if _kind(r).startswith("ahn")]
    if missing or not ahns:
        raise ValueError(f"the claims need runs of full, swa and an AHN; missing: {', '.join(missing or ['ahn-*'])}")
    swa = by_kind["swa"]
    sinks, window = int(_method(swa)["sinks"]), int(_method(swa)["window"])
    swa_scores = _scores(swa)
    outside = sorted(r["key"] for r in swa.records if needle_outside(r, sinks, window))
    claims: list[Claim] = []

    accuracy: dict[str, float] = {}
    for run in ahns + [r for r in runs if _kind(r).startswith("ct")]:
        scores = _scores(run)
        keys = [k for k in outside if k in scores and k in swa_scores]
        if not keys:
            raise ValueError(f"{run.label}: no scored sample shares a key with {swa.label} outside the window")
        accuracy[run.label] = float(np.mean([scores[k] for k in keys]))
        if not _kind(run).startswith("ahn"):
            continue
        mean, lo, hi = paired_difference(scores, swa_scores, keys, row_seed(0, run.label, swa.label), n_boot)
        claims.append(Claim(
            f"{run.label} beats {swa.label} outside the window", lo > 0,
            f"{accuracy[run.label]:.1%} vs {np.mean([swa_scores[k] for k in keys]):.1%} on {len(keys)} samples whose "
            f"needle left the window; difference {mean:+.1%}, 95% CI [{lo:+.1%}, {hi:+.1%}]",
            {"n": len(keys), "accuracy": accuracy[run.label], "swa_accuracy": float(np.mean([swa_scores[k] for k in keys])),
             "difference": mean, "ci": [lo, hi]}))

    weakest_ahn = min(accuracy[r.label] for r in ahns)
    for run in runs:
        if _kind(run).startswith("ct"):
            claims.append(Claim(
                f"{run.label} lands in between or below", accuracy[run.label] <= weakest_ahn,
                f"{accuracy[run.label]:.1%} outside the window; weakest AHN {weakest_ahn:.1%}",
                {"accuracy": accuracy[run.label], "weakest_ahn": weakest_ahn}))

    for run in runs:
        kind = _kind(run)
        tokens = _bucket_means(run, "prompt_tokens")
        cache = _bucket_means(run, "cache_bytes_measured")
        if kind == "full":
            per_token = [cache[b] / tokens[b] for b in cache]
            spread = max(per_token) / min(per_token) - 1
            claims.append(Claim(
                f"{run.label}'s cache grows linearly", spread <= LINEAR_TOLERANCE,
                f"{min(per_token):,.0f}–{max(per_token):,.0f} bytes per prompt token over {len(per_token)} buckets",
                {"bytes_per_token": per_token}))
        else:
            flat = flat_cache_claim(run.label, tokens, cache, sinks, window)
            if flat is not None:
                claims.append(flat)

    full = by_kind["full"]
    score = _bucket_means(full, "score")
    tokens = _bucket_means(full, "prompt_tokens")
    within = {b: s for b, s in score.items() if tokens[b] <= training_length}
    claims.append(Claim(
        f"{full.label} is near-perfect within its training length", bool(within) and min(within.values()) >= NEAR_PERFECT,
        ", ".join(f"{b}: {s:.0%}" for b, s in sorted(within.items(), key=lambda kv: tokens[kv[0]]))
        + f" (training length {training_length:,})", {"by_bucket": within}))
    return claims


def _outside_by_bucket(runs: Sequence[Run]) -> tuple[list[str], dict[str, list[str]]]:
    """Length buckets (shortest first) and, per bucket, the keys of samples whose needle left the window."""
    swa = next(r for r in runs if _kind(r) == "swa")
    sinks, window = int(_method(swa)["sinks"]), int(_method(swa)["window"])
    keys_by_bucket: dict[str, list[str]] = {}
    for r in swa.records:
        if needle_outside(r, sinks, window):
            keys_by_bucket.setdefault(str(r["bucket"]), []).append(r["key"])
    tokens = _bucket_means(swa, "prompt_tokens")
    return sorted(keys_by_bucket, key=lambda b: tokens[b]), keys_by_bucket


def outside_table(runs: Sequence[Run]) -> str:
    """Accuracy on samples whose needle left the window, per length bucket and method (markdown)."""
    buckets, keys_by_bucket = _outside_by_bucket(runs)
    lines = ["| method | " + " | ".join(f"{b} (n={len(keys_by_bucket[b])})" for b in buckets) + " |",
             "|---|" + "---:|" * len(buckets)]
    for run in runs:
        scores = _scores(run)
        cells = []
        for b in buckets:
            vals = [scores[k] for k in keys_by_bucket[b] if k in scores]
            cells.append(f"{np.mean(vals):.0%}" if vals else "")
        lines.append(f"| {run.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_outside(runs: Sequence[Run], out: Path) -> list[Path]:
    """Bars: accuracy beyond the window per length bucket and method, with 95% bootstrap CIs (PNG + SVG)."""
    from matplotlib.figure import Figure

    from harness.plots import _save, _style
    from harness.style import method_of, sort_key, style_for

    buckets, keys_by_bucket = _outside_by_bucket(runs)
    m = _method(next(r for r in runs if _kind(r) == "swa"))
    kinds = {id(r): method_of(r.manifest, r.label) for r in runs}
    runs = sorted(runs, key=lambda r: sort_key(kinds[id(r)], r.label))  # the paper's row order, as every figure
    with _style():
        fig = Figure(figsize=(8, 4.4), layout="constrained")
        ax = fig.add_subplot()
        width = 0.84 / len(runs)
        for i, run in enumerate(runs):
            style = style_for(kinds[id(run)])
            color = style.color
            scores = _scores(run)
            means, lows, highs = [], [], []
            for b in buckets:
                vals = [scores[k] for k in keys_by_bucket[b] if k in scores]
                mean = float(np.mean(vals)) if vals else 0.0
                lo, hi = bootstrap_ci([vals], seed=row_seed(0, run.label, b)) or (mean, mean)
                means.append(100 * mean)
                lows.append(100 * (mean - lo))
                highs.append(100 * (hi - mean))
            x = np.arange(len(buckets)) + (i - (len(runs) - 1) / 2) * width
            ax.bar(x, means, width, color=color, label=run.label, yerr=[lows, highs], capsize=2, hatch=style.hatch,
                   edgecolor="white", linewidth=0.5, error_kw={"elinewidth": 0.8, "ecolor": "0.3"})
            for xi, mean in zip(x, means):
                if mean < 0.5:  # an empty bar would be invisible: say it scored nothing
                    ax.text(xi, 1.0, "0", ha="center", va="bottom", fontsize=8, color=color)
        ax.set_xticks(np.arange(len(buckets)), [f"{b}\n(n={len(keys_by_bucket[b])})" for b in buckets])
        ax.set_xlabel("length bucket (samples whose needle left the window)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 108)
        ax.set_title(f"Retrieval beyond the window: {m['sinks']} sinks + {m['window']} window (95% bootstrap CI)")
        fig.legend(loc="outside lower center", ncol=min(len(runs), 4), frameon=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        return _save(fig, out.parent, out.name, ("png", "svg"))


def write_claims(run_dirs: Sequence[Path], out: Path, training_length: int, title: str = "") -> list[Claim]:
    """Check the claims on run folders; write ``<out>.md`` and ``<out>.json``."""
    runs = [load_run(p) for p in run_dirs]
    claims = check_claims(runs, training_length)
    swa = next(r for r in runs if _kind(r) == "swa")
    m = _method(swa)
    lines = [f"# {title or 'Qualitative claims'}", "",
             f"Sinks {m['sinks']} + window {m['window']}. A needle is outside the window when its first token lies at "
             f"least {NEEDLE_SPAN} tokens before the last {m['window']} prompt tokens. Produced by "
             "`python -m studies.check_claims` from the per-sample records of the runs in "
             f"`{Path(run_dirs[0]).parent.as_posix()}/`.", "",
             "| claim | holds | evidence |", "|---|---|---|"]
    lines += [f"| {c.name} | {'yes' if c.holds else '**no**'} | {c.detail} |" for c in claims]
    plot = plot_outside(runs, out.with_name(out.name + "_beyond_window"))[0]
    lines += ["", "Accuracy (greedy exact match) on the samples whose needle left the window, by length bucket:", "",
              outside_table(runs), "", f"![accuracy beyond the window]({plot.name})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps({"claims": [asdict(c) for c in claims],
                                                    "runs": [str(p) for p in run_dirs]}, indent=2) + "\n")
    return claims
