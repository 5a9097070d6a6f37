"""The paper's claims on a real base (the coder presets' comparison on the real-text tasks), read off per-sample
records:

1. every AHN answers more of the questions whose answer lies beyond the window than sinks + window does, by more
   than the 95% CI of the paired difference (bootstrap over the same samples scored by both);
2. CT pooling lands at or below that: its share beyond the window is at most the weakest AHN's;
3. every AHN's cache stays flat in the prompt length once prompts exceed sinks + window;
4. full attention's cost grows: its cache bytes per prompt token stay constant (linear growth) and its FLOPs per
   sample rise with the length.

Where the answer lies: ``extra["needle_tokens_from_end"]`` (the real-text tasks: its distance in tokens from the
end of the task's prompt, before any chat template) with ``extra["needle_token_offset"]``, else the token offset
alone (or ``"answer_token_offset"``), else ``extra["needle_depth"]`` (or ``"depth"``), its depth as a fraction of
the prompt (a percentage above 1 is divided by 100). It is beyond the window when it is not a sink and lies at
least ``NEEDLE_SPAN`` tokens before the last ``window`` prompt tokens. A claim that does not hold is reported as failing, with its numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from harness.store import Run, load_run
from harness.summary import N_BOOT, bootstrap_ci, row_seed
from studies.claims import (
    LINEAR_TOLERANCE,
    NEEDLE_SPAN,
    Claim,
    _bucket_means,
    _kind,
    _method,
    _scores,
    flat_cache_claim,
    paired_difference,
)

OFFSET_KEYS = ("needle_token_offset", "answer_token_offset")
DEPTH_KEYS = ("needle_depth", "depth")


def answer_offset(record: dict[str, Any]) -> float | None:
    """Token offset of the answer in the prompt (see the module docstring); None when the record has none."""
    extra = record.get("extra") or {}
    for key in OFFSET_KEYS:
        if extra.get(key) is not None:
            return float(extra[key])
    tokens = record.get("prompt_tokens")
    for key in DEPTH_KEYS:
        if extra.get(key) is not None and tokens:
            depth = float(extra[key])
            return (depth / 100 if depth > 1 else depth) * tokens
    return None


def beyond_window(record: dict[str, Any], sinks: int, window: int) -> bool | None:
    extra = record.get("extra") or {}
    if extra.get("needle_tokens_from_end") is not None:  # measured in the task's own prompt (the real-text tasks)
        start = extra.get("needle_token_offset")
        return (start is None or start >= sinks) and extra["needle_tokens_from_end"] >= window + NEEDLE_SPAN
    offset = answer_offset(record)
    if offset is None or record.get("prompt_tokens") is None:
        return None
    return offset >= sinks and offset + NEEDLE_SPAN <= record["prompt_tokens"] - window


def _geometry(runs: Sequence[Run]) -> tuple[Run, int, int, dict[str, list[str]], dict[str, float]]:
    kinds = {_kind(r) for r in runs}
    missing = [k for k in ("full", "swa") if k not in kinds] + ([] if any(k.startswith("ahn") for k in kinds)
                                                                 else ["ahn-*"])
    if missing:
        raise ValueError(f"the claims need runs of full, swa and an AHN; missing: {', '.join(missing)}")
    swa = next(r for r in runs if _kind(r) == "swa")
    sinks, window = int(_method(swa)["sinks"]), int(_method(swa)["window"])
    by_bucket: dict[str, list[str]] = {}
    for r in swa.records:
        if beyond_window(r, sinks, window):
            by_bucket.setdefault(str(r["bucket"]), []).append(r["key"])
    if not by_bucket:
        raise ValueError(f"{swa.label}: no record says where its answer lies beyond the window (extra."
                         f"{' / '.join(OFFSET_KEYS + DEPTH_KEYS)})")
    return swa, sinks, window, by_bucket, _bucket_means(swa, "prompt_tokens")


def share_with_ci(scores: dict[str, float], keys: Sequence[str], seed: Sequence[int]) -> tuple[float, float, float, int]:
    vals = [scores[k] for k in keys if k in scores]
    if not vals:
        return float("nan"), float("nan"), float("nan"), 0
    lo, hi = bootstrap_ci([vals], seed=seed) or (float(np.mean(vals)),) * 2
    return float(np.mean(vals)), lo, hi, len(vals)


def check_real_claims(runs: Sequence[Run], n_boot: int = N_BOOT) -> list[Claim]:
    """The four claims (module docstring) on runs including one `full`, one `swa` and at least one `ahn-*`."""
    swa, sinks, window, by_bucket, _tokens = _geometry(runs)
    swa_scores = _scores(swa)
    beyond = sorted(k for keys in by_bucket.values() for k in keys)
    claims: list[Claim] = []
    ahns = [r for r in runs if _kind(r).startswith("ahn")]
    cts = [r for r in runs if _kind(r).startswith("ct")]
    share: dict[str, float] = {}
    ct_numbers: list[tuple[str, dict[str, Any]]] = []
    for run in ahns + cts:
        scores = _scores(run)
        keys = [k for k in beyond if k in scores and k in swa_scores]
        if not keys:
            raise ValueError(f"{run.label}: no scored sample shares a key with {swa.label} beyond the window")
        share[run.label] = float(np.mean([scores[k] for k in keys]))
        mean, lo, hi = paired_difference(scores, swa_scores, keys, row_seed(0, run.label, swa.label), n_boot)
        base = float(np.mean([swa_scores[k] for k in keys]))
        numbers = {"n": len(keys), "share": share[run.label], "swa_share": base, "difference": mean, "ci": [lo, hi]}
        if run in cts:
            ct_numbers.append((run.label, numbers))
            continue
        claims.append(Claim(
            f"{run.label} beats {swa.label} beyond the window", lo > 0,
            f"{share[run.label]:.1%} vs {base:.1%} on {len(keys)} samples whose answer lies beyond the window; "
            f"difference {mean:+.1%}, 95% CI [{lo:+.1%}, {hi:+.1%}]", numbers))
    weakest = min(share[r.label] for r in ahns)
    for label, n in ct_numbers:
        claims.append(Claim(
            f"{label} lands at or below the AHNs beyond the window", n["share"] <= weakest,
            f"{n['share']:.1%} beyond the window; weakest AHN {weakest:.1%}; against {swa.label} "
            f"{n['difference']:+.1%}, 95% CI [{n['ci'][0]:+.1%}, {n['ci'][1]:+.1%}]", n | {"weakest_ahn": weakest}))

    for run in ahns:
        tokens = _bucket_means(run, "prompt_tokens")
        cache = _bucket_means(run, "cache_bytes_measured")
        flat = flat_cache_claim(run.label, tokens, cache, sinks, window)
        claims.append(flat or Claim(f"{run.label}'s cache stays flat", False,
                                    "fewer than two length buckets past sinks + window to compare", {}))

    full = next(r for r in runs if _kind(r) == "full")
    tokens = _bucket_means(full, "prompt_tokens")
    cache = _bucket_means(full, "cache_bytes_measured")
    flops = _bucket_means(full, "flops_actual")
    order = sorted(tokens, key=tokens.get)
    per_token = [cache[b] / tokens[b] for b in order if b in cache]
    spread = max(per_token) / min(per_token) - 1 if per_token else float("inf")
    rising = [flops[b] for b in order if b in flops]
    grows = len(rising) >= 2 and all(b > a for a, b in zip(rising, rising[1:]))
    claims.append(Claim(
        f"{full.label}'s cost grows with the length", spread <= LINEAR_TOLERANCE and grows,
        (f"cache {min(per_token):,.0f}–{max(per_token):,.0f} bytes per prompt token over {len(per_token)} buckets"
         if per_token else "no cache measured") + "; FLOPs per sample "
        + (" → ".join(f"{v / 1e12:.1f}T" for v in rising) if rising else "not recorded"),
        {"bytes_per_token": per_token, "flops_by_bucket": rising}))
    return claims


def beyond_table(runs: Sequence[Run]) -> str:
    """Share of beyond-window answers per method and length bucket, with 95% bootstrap CIs (markdown)."""
    _swa, _s, _w, by_bucket, tokens = _geometry(runs)
    buckets = sorted(by_bucket, key=lambda b: tokens[b])
    lines = ["| method | " + " | ".join(f"{b} (n={len(by_bucket[b])})" for b in buckets) + " |",
             "|---|" + "---:|" * len(buckets)]
    for run in runs:
        scores = _scores(run)
        cells = []
        for b in buckets:
            mean, lo, hi, n = share_with_ci(scores, by_bucket[b], row_seed(0, run.label, b))
            cells.append(f"{mean:.0%} [{lo:.0%}, {hi:.0%}]" if n else "")
        lines.append(f"| {run.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_real_claims(run_dirs: Sequence[Path], out: Path, title: str = "") -> list[Claim]:
    """Check the claims on run folders; write ``<out>.md`` and ``<out>.json``."""
    runs = [load_run(p) for p in run_dirs]
    claims = check_real_claims(runs)
    swa, sinks, window, by_bucket, _ = _geometry(runs)
    lines = [f"# {title or 'The paper claims on a real base'}", "",
             f"Sinks {sinks} + window {window}. An answer lies beyond the window when its first token is not a sink "
             f"and lies at least {NEEDLE_SPAN} tokens before the last {window} prompt tokens. Produced by "
             "`python -m studies.check_coder_claims` from the per-sample records of the runs in "
             f"`{Path(run_dirs[0]).parent.as_posix()}/`.", "",
             "| claim | holds | evidence |", "|---|---|---|"]
    lines += [f"| {c.name} | {'yes' if c.holds else '**no**'} | {c.detail} |" for c in claims]
    lines += ["", "Share of the questions whose answer lies beyond the window that each method answers, by length "
              "bucket (95% bootstrap CI):", "", beyond_table(runs), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps({"claims": [asdict(c) for c in claims],
                                                    "runs": [str(p) for p in run_dirs]}, indent=2) + "\n")
    return claims
