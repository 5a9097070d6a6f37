"""Compare two runs sample by sample: the regression gate for CI.

``harness compare RUN_A RUN_B --max-drop 1.0`` pairs the samples of the two runs by key and reports per
task × bucket the change B − A in score points (×100) with a paired bootstrap CI. Each row gets a verdict:

* ``pass``: the drop is at most ``--max-drop`` points (or the score rose);
* ``REGRESSION``: the drop is larger than ``--max-drop`` *and* significant at ``--ci-level``;
* ``INSUFFICIENT SAMPLES``: the drop is larger than ``--max-drop`` but the samples cannot tell it from noise
  at that level. This does not pass either: a gate that passed every drop it could not prove would pass 2 of
  4 samples flipped from right to wrong.

Significance: for binary scores (every paired score 0 or 1) the paired exact test, McNemar's exact test (a
two-sided sign test on the discordant pairs: right in A and wrong in B against the reverse, p = the binomial
tail at 1/2); otherwise the paired bootstrap CI's upper bound below 0. A fixed tolerance alone either misses
real drops on large buckets or flags noise on small ones. Aggregate rows (a task over its buckets, a family
at one level, everything) are gated the same way, so a drop spread thinly across buckets is caught too.

The gate trusts neither run: both are read strictly (``harness.run_checks.load_gate_run``: a run being
written, shard files, torn, unparsable or duplicate lines, and scores that are not what the task's scorer
gives their predictions are refused), zero scored pairs are refused, and keys present in only one run fail
the gate unless ``--allow-missing`` is given. With ``--require-identical-ids`` (the deterministic CPU
reference of ``scripts/ci_gate.sh``) every pair's ``generated_ids`` must also be identical.

A sample that scored in A and failed in B (an OOM, a crash) cannot be paired on score; it is reported as a
new failure and, by default, fails the gate as well: excluding it silently would reward a method for
failing on the hard samples.

Two records pair only when they were computed from the same input: records carry hashes of the prompt text
fed, of its token ids and of the reference answers (``harness.hashing``). A shared key whose hashes differ
(another ``--seed``, a changed generator, tokenizer or truncation) makes ``compare`` refuse (exit 2) and
name the hash fields that differ. Records of older runs carry no hashes: their pairs are compared with a
warning that they could not be checked, unless ``--require-hashes`` is given, which refuses them.

Exit codes: 0 pass, 1 the gate failed (regressions, insufficient samples, missing keys, new failures or
different generated ids, named on stdout), 2 bad input or a run the gate refuses (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.buckets import ALL, record_bucket, sort_buckets
from harness.hashing import RECORD_HASH_KEYS
from harness.run_checks import load_gate_run, score_problems
from harness.store import Run, RunError
from harness.summary import bootstrap_ci, is_scored, row_seed, task_family

DEFAULT_MAX_DROP = 1.0
_SHOW_KEYS = 10


@dataclass
class Comparison:
    """The outcome of ``compare_runs``: per-row deltas, the regressions among them, unpaired keys."""

    label_a: str
    label_b: str
    max_drop: float
    ci_level: float
    n_boot: int
    rows: list[dict[str, Any]]
    regressions: list[dict[str, Any]]
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    new_failures: list[str] = field(default_factory=list)
    fixed_failures: list[str] = field(default_factory=list)
    fail_on_new_failures: bool = True
    path_a: str | None = None
    path_b: str | None = None
    unverified: list[str] = field(default_factory=list)  # shared keys whose records carry no input hashes
    insufficient: list[dict[str, Any]] = field(default_factory=list)  # drops beyond tolerance, not significant
    allow_missing: bool = False
    different_ids: list[str] = field(default_factory=list)  # pairs whose generated_ids differ (when required)

    @property
    def passed(self) -> bool:
        """True when the gate passes: no regression, no drop it cannot rule out, no missing key (unless
        allowed), no new failure (unless allowed), no differing generated ids (when required)."""
        missing = not self.allow_missing and bool(self.only_in_a or self.only_in_b)
        return not (self.regressions or self.insufficient or missing or self.different_ids
                    or (self.fail_on_new_failures and self.new_failures))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {**asdict(self), "passed": self.passed}


class InputMismatchError(RunError):
    """Records share a key but were computed from different inputs (prompt, token ids or answers)."""


def _as_run(run: Run | str | Path, allow_unverified: bool) -> Run:
    """A path is read strictly (``load_gate_run``); a ``Run`` already in memory has its scores checked."""
    if not isinstance(run, Run):
        return load_gate_run(run, allow_unverified=allow_unverified)
    invalid, unverifiable = score_problems(run.records)
    if invalid or (unverifiable and not allow_unverified):
        raise RunError(f"{run.path or run.label} cannot be gated: scores not what the task's scorer gives: "
                       f"{', '.join((invalid or unverifiable)[:3])}")
    return run


def binary_drop_p(pairs: Sequence[np.ndarray]) -> float | None:
    """Two-sided exact McNemar p-value of a paired binary comparison, or None when the scores are not binary.

    ``pairs``: arrays of (a, b) scores ×100. With ``d`` discordant pairs of which ``w`` went right -> wrong, the
    one-sided tail P(X >= w), X ~ Binomial(d, 1/2), doubled (capped at 1); 1 when nothing is discordant.
    """
    both = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in pairs]) if pairs else None
    if both is None or not np.isin(both, (0.0, 100.0)).all():
        return None
    worse = int(((both[:, 0] == 100.0) & (both[:, 1] == 0.0)).sum())
    better = int(((both[:, 0] == 0.0) & (both[:, 1] == 100.0)).sum())
    d = worse + better
    if d == 0 or worse <= better:
        return 1.0
    tail = sum(math.comb(d, k) for k in range(worse, d + 1)) / 2**d
    return min(1.0, 2.0 * tail)


def check_same_inputs(
    by_a: dict[str, dict[str, Any]], by_b: dict[str, dict[str, Any]], keys: list[str], *,
    require_hashes: bool = False,
) -> list[str]:
    """Raise ``InputMismatchError`` when paired records' input hashes differ; return the unverifiable keys.

    A key is unverifiable when either record lacks a hash field (a run from before records carried them);
    with ``require_hashes`` that is refused too.
    """
    differing: dict[str, list[str]] = {}
    unverified: list[str] = []
    for key in keys:
        ra, rb = by_a[key], by_b[key]
        if any(ra.get(h) is None or rb.get(h) is None for h in RECORD_HASH_KEYS):
            unverified.append(key)
        bad = [h for h in RECORD_HASH_KEYS if ra.get(h) is not None and rb.get(h) is not None and ra[h] != rb[h]]
        if bad:
            differing[key] = bad
    if differing:
        fields = sorted({h for v in differing.values() for h in v}, key=RECORD_HASH_KEYS.index)
        example = "; ".join(f"{k}: {', '.join(v)}" for k, v in list(differing.items())[:3])
        raise InputMismatchError(
            f"refusing to pair samples computed from different inputs: {len(differing)} of {len(keys)} shared "
            f"sample keys differ in {', '.join(fields)} (e.g. {example}). The runs used another seed, generator, "
            "tokenizer, truncation or data; compare runs made from the same inputs."
        )
    if unverified and require_hashes:
        raise InputMismatchError(
            f"{len(unverified)} of {len(keys)} shared sample keys have records without input hashes "
            f"({', '.join(RECORD_HASH_KEYS)}), e.g. {unverified[0]} (a run from an older harness); rerun it, or "
            "compare without --require-hashes to pair them unchecked"
        )
    return unverified


def _delta_row(
    task: str,
    bucket: str,
    scope: str,
    groups: dict[str, list[tuple[float, float]]],
    n_new_failures: int,
    max_drop: float,
    n_boot: int,
    seed: int,
    ci_level: float,
) -> dict[str, Any]:
    """One comparison row; ``groups`` maps each task in the row to its (a, b) score pairs (×100)."""
    pairs = {t: np.array(p, dtype=np.float64) for t, p in groups.items() if p}
    n = sum(len(p) for p in pairs.values())
    row: dict[str, Any] = {
        "task": task, "bucket": bucket, "scope": scope, "n_pairs": n, "n_tasks": len(pairs),
        "n_new_failures": n_new_failures, "score_a": None, "score_b": None, "delta": None,
        "ci_low": None, "ci_high": None, "test": None, "p_value": None, "regression": False,
        "insufficient": False,
    }
    if not pairs:
        return row
    if scope in ("cell", "task"):
        strata = [np.concatenate(list(pairs.values()))]
    else:  # unweighted over tasks, as in the summary; the bootstrap is stratified by task
        strata = list(pairs.values())
    row["score_a"] = float(np.mean([s[:, 0].mean() for s in strata]))
    row["score_b"] = float(np.mean([s[:, 1].mean() for s in strata]))
    diffs = [s[:, 1] - s[:, 0] for s in strata]
    row["delta"] = float(np.mean([d.mean() for d in diffs]))
    lo, hi = bootstrap_ci(diffs, n_boot=n_boot, seed=row_seed(seed, task, bucket), level=ci_level)
    row["ci_low"], row["ci_high"] = lo, hi
    p = binary_drop_p(list(pairs.values()))
    if p is None:
        row["test"], significant = "bootstrap", hi < 0
    else:
        row["test"], row["p_value"], significant = "mcnemar-exact", p, p < 1.0 - ci_level
    beyond = row["delta"] < -max_drop
    row["regression"] = bool(beyond and significant)
    row["insufficient"] = bool(beyond and not significant)
    return row


def compare_runs(
    run_a: Run | str | Path,
    run_b: Run | str | Path,
    max_drop: float = DEFAULT_MAX_DROP,
    n_boot: int = 2000,
    seed: int = 0,
    *,
    ci_level: float = 0.95,
    fail_on_new_failures: bool = True,
    require_hashes: bool = False,
    allow_missing: bool = False,
    allow_unverified_scores: bool = False,
    require_identical_ids: bool = False,
) -> Comparison:
    """Paired comparison of run B against baseline run A.

    Deltas are B − A in points (×100) over samples scored in both runs; row verdicts as in the module
    docstring. Raises RunError when a run cannot be gated, the runs share no sample key, no pair was scored
    in both, or (with ``require_identical_ids``) a pair lacks its generated ids.
    """
    a, b = _as_run(run_a, allow_unverified_scores), _as_run(run_b, allow_unverified_scores)
    by_a = {r["key"]: r for r in a.records}
    by_b = {r["key"]: r for r in b.records}
    common = [k for k in by_a if k in by_b]  # A's stable order
    if not common:
        raise RunError(f"nothing to compare: {a.path or a.label} and {b.path or b.label} share no sample key")
    unverified = check_same_inputs(by_a, by_b, common, require_hashes=require_hashes)
    if not any(is_scored(by_a[k]) and is_scored(by_b[k]) for k in common):
        raise RunError(f"nothing to compare: none of the {len(common)} shared sample key(s) scored in both runs "
                       "(zero scored pairs)")
    different_ids: list[str] = []
    if require_identical_ids:
        lacking = [k for k in common if is_scored(by_a[k]) and is_scored(by_b[k])
                   and not (isinstance(by_a[k].get("generated_ids"), list)
                            and isinstance(by_b[k].get("generated_ids"), list))]
        if lacking:
            raise RunError(f"--require-identical-ids: {len(lacking)} pair(s) lack generated_ids (a run from an "
                           f"older harness), e.g. {lacking[0]}; regenerate it")
        different_ids = [k for k in common if is_scored(by_a[k]) and is_scored(by_b[k])
                         and by_a[k]["generated_ids"] != by_b[k]["generated_ids"]]

    pairs: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    new_fail: dict[tuple[str, str], list[str]] = defaultdict(list)
    fixed: list[str] = []
    for key in common:
        ra, rb = by_a[key], by_b[key]
        cell = (str(ra.get("task") or "unknown"), record_bucket(ra))
        ok_a, ok_b = is_scored(ra), is_scored(rb)
        if ok_a and ok_b:
            pairs[cell].append((100.0 * float(ra["score"]), 100.0 * float(rb["score"])))
        elif ok_a:
            new_fail[cell].append(key)
        elif ok_b:
            fixed.append(key)

    cells = set(pairs) | set(new_fail)
    tasks = sorted({t for t, _ in cells})
    buckets_of = {t: sort_buckets(bk for tt, bk in cells if tt == t) for t in tasks}
    args = (max_drop, n_boot, seed, ci_level)

    def nf(pred: Any) -> int:
        return sum(len(v) for c, v in new_fail.items() if pred(c))

    def all_of(t: str) -> list[tuple[float, float]]:
        return [p for bk in buckets_of[t] for p in pairs.get((t, bk), [])]

    rows: list[dict[str, Any]] = []
    for t in tasks:
        for bk in buckets_of[t]:
            rows.append(_delta_row(t, bk, "cell", {t: pairs.get((t, bk), [])}, len(new_fail.get((t, bk), [])), *args))
        rows.append(_delta_row(t, ALL, "task", {t: all_of(t)}, nf(lambda c, t=t: c[0] == t), *args))
    families = sorted({task_family(t) for t in tasks})
    for fam in families:
        ftasks = [t for t in tasks if task_family(t) == fam]
        if len(ftasks) < 2:
            continue  # would repeat the task's own rows
        for bk in sort_buckets(bk for t in ftasks for bk in buckets_of[t]):
            groups = {t: pairs.get((t, bk), []) for t in ftasks}
            n_f = nf(lambda c, bk=bk, ft=ftasks: c[1] == bk and c[0] in ft)
            rows.append(_delta_row(f"{fam}/*", bk, "family-bucket", groups, n_f, *args))
        if len(families) > 1:  # with one family its total is the overall row
            groups = {t: all_of(t) for t in ftasks}
            rows.append(_delta_row(f"{fam}/*", ALL, "family", groups, nf(lambda c, ft=ftasks: c[0] in ft), *args))
    if len(tasks) > 1:
        rows.append(_delta_row(ALL, ALL, "overall", {t: all_of(t) for t in tasks}, nf(lambda c: True), *args))

    return Comparison(
        label_a=a.label,
        label_b=b.label,
        max_drop=max_drop,
        ci_level=ci_level,
        n_boot=n_boot,
        rows=rows,
        regressions=[r for r in rows if r["regression"]],
        insufficient=[r for r in rows if r["insufficient"]],
        allow_missing=allow_missing,
        different_ids=different_ids,
        only_in_a=[k for k in by_a if k not in by_b],
        only_in_b=[k for k in by_b if k not in by_a],
        new_failures=[k for v in new_fail.values() for k in v],
        fixed_failures=fixed,
        fail_on_new_failures=fail_on_new_failures,
        path_a=str(a.path) if a.path else None,
        path_b=str(b.path) if b.path else None,
        unverified=unverified,
    )


# ---------------------------------------------------------------------------------------------- output


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def _keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW_KEYS])
    return shown + (f", … ({len(keys) - _SHOW_KEYS} more)" if len(keys) > _SHOW_KEYS else "")


def describe_regression(row: dict[str, Any]) -> str:
    """``lveval/x @ 16k: -30.00 points (CI -38.1 to -22.0, n=50; 60.00 -> 30.00)``, with the exact test's p
    for binary scores."""
    p = f", exact p={row['p_value']:.3g}" if row.get("p_value") is not None else ""
    return (
        f"{row['task']} @ {row['bucket']}: {row['delta']:+.2f} points "
        f"(CI {row['ci_low']:+.2f} to {row['ci_high']:+.2f}{p}, n={row['n_pairs']}; "
        f"{row['score_a']:.2f} -> {row['score_b']:.2f})"
    )


def _verdict(row: dict[str, Any]) -> str:
    return "REGRESSION" if row["regression"] else "INSUFFICIENT SAMPLES" if row["insufficient"] else ""


def format_comparison(cmp: Comparison) -> str:
    """A readable report: header, the delta table, unpaired keys, then the verdict."""
    pct = f"{cmp.ci_level * 100:g}%"
    lines = [
        f"A (baseline): {cmp.label_a}" + (f"  [{cmp.path_a}]" if cmp.path_a else ""),
        f"B (candidate): {cmp.label_b}" + (f"  [{cmp.path_b}]" if cmp.path_b else ""),
        f"delta = B - A in score points (x100), paired by sample key; {pct} paired bootstrap CI "
        f"({cmp.n_boot} resamples); a drop > {cmp.max_drop:g} points is a REGRESSION when significant (binary "
        f"scores: exact McNemar p < {1 - cmp.ci_level:.3g}; else the CI entirely below 0), else INSUFFICIENT "
        "SAMPLES (not a pass)",
        "",
    ]
    header = ["task", "bucket", "n", "A", "B", "delta", f"{pct} CI", "new fail", ""]
    table = [header]
    for r in cmp.rows:
        ci = "–" if r["ci_low"] is None else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        table.append([
            r["task"], r["bucket"], str(r["n_pairs"]), _f(r["score_a"]), _f(r["score_b"]),
            _f(r["delta"], "+.2f"), ci, str(r["n_new_failures"] or ""), _verdict(r),
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7}
    for i, row in enumerate(table):
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    if cmp.only_in_a:
        lines.append(f"keys only in A ({len(cmp.only_in_a)}, missing from B): {_keys(cmp.only_in_a)}")
    if cmp.only_in_b:
        lines.append(f"keys only in B ({len(cmp.only_in_b)}, missing from A): {_keys(cmp.only_in_b)}")
    if cmp.unverified:
        lines.append(f"WARNING: {len(cmp.unverified)} pair(s) could not be checked for equal inputs (records "
                     f"without input hashes, from an older run): {_keys(cmp.unverified)}")
    if cmp.fixed_failures:
        lines.append(f"failed in A, scored in B ({len(cmp.fixed_failures)}): {_keys(cmp.fixed_failures)}")
    if cmp.new_failures:
        lines.append(f"scored in A, FAILED in B ({len(cmp.new_failures)}): {_keys(cmp.new_failures)}")
    if cmp.passed:
        lines.append(f"PASS: no bucket dropped by more than {cmp.max_drop:g} points.")
    else:
        if cmp.regressions:
            lines.append(f"FAIL: {len(cmp.regressions)} regression(s):")
            lines.extend(f"  {describe_regression(r)}" for r in cmp.regressions)
        if cmp.insufficient:
            lines.append(f"FAIL: insufficient samples to rule out a drop of more than {cmp.max_drop:g} points "
                         f"at the {cmp.ci_level * 100:g}% level in {len(cmp.insufficient)} row(s):")
            lines.extend(f"  {describe_regression(r)}" for r in cmp.insufficient)
        if not cmp.allow_missing and (cmp.only_in_a or cmp.only_in_b):
            lines.append(f"FAIL: {len(cmp.only_in_a)} key(s) of A missing from B and {len(cmp.only_in_b)} of B "
                         "missing from A (--allow-missing to compare the shared keys only).")
        if cmp.different_ids:
            lines.append(f"FAIL: {len(cmp.different_ids)} pair(s) generated different token ids: "
                         f"{_keys(cmp.different_ids)}")
        if cmp.fail_on_new_failures and cmp.new_failures:
            lines.append(f"FAIL: {len(cmp.new_failures)} sample(s) that scored in A failed in B.")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``harness compare`` arguments (the CLI mounts this as a subcommand)."""
    p = argparse.ArgumentParser(
        prog="harness compare",
        description="Paired comparison of two runs; exits 1 when B regresses significantly against A.",
    )
    p.add_argument("run_a", type=Path, help="baseline run folder")
    p.add_argument("run_b", type=Path, help="candidate run folder")
    p.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP,
                   help="largest tolerated drop in score points (x100) per bucket (default %(default)s)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default %(default)s)")
    p.add_argument("--ci-level", type=float, default=0.95,
                   help="confidence level of the CI (default %(default)s); raise it when gating many buckets")
    p.add_argument("--allow-new-failures", action="store_true",
                   help="do not fail the gate on samples that scored in A and failed in B")
    p.add_argument("--require-hashes", action="store_true",
                   help="refuse pairs whose records carry no input hashes (runs from an older harness)")
    p.add_argument("--allow-missing", action="store_true",
                   help="compare the shared keys only: keys present in one run alone do not fail the gate")
    p.add_argument("--allow-unverified-scores", action="store_true",
                   help="trust successful records whose score cannot be recomputed from their prediction")
    p.add_argument("--require-identical-ids", action="store_true",
                   help="fail unless every pair generated identical token ids (a deterministic reference)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``harness compare RUN_A RUN_B [--max-drop X] [--json]``: 0 pass, 1 regression, 2 bad input."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed the message; --help exits 0
        return int(e.code or 0)
    bad = []
    if not (math.isfinite(args.max_drop) and args.max_drop >= 0):
        bad.append(f"--max-drop {args.max_drop} (need a finite number >= 0)")
    if args.n_boot < 1:
        bad.append(f"--n-boot {args.n_boot} (need an integer >= 1)")
    if not 0 < args.ci_level < 1:
        bad.append(f"--ci-level {args.ci_level} (need 0 < level < 1)")
    if bad:
        print(f"harness compare: error: bad {'; '.join(bad)}", file=sys.stderr)
        return 2
    try:
        cmp = compare_runs(
            args.run_a, args.run_b, args.max_drop, n_boot=args.n_boot, seed=args.seed,
            ci_level=args.ci_level, fail_on_new_failures=not args.allow_new_failures,
            require_hashes=args.require_hashes, allow_missing=args.allow_missing,
            allow_unverified_scores=args.allow_unverified_scores, require_identical_ids=args.require_identical_ids,
        )
    except (RunError, OSError) as e:
        print(f"harness compare: error: {e}", file=sys.stderr)
        return 2
    if cmp.unverified:
        print(f"harness compare: warning: {len(cmp.unverified)} of the paired samples carry no input hashes "
              "(an older run); they were paired by key alone", file=sys.stderr)
    if args.json:
        print(json.dumps(cmp.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_comparison(cmp))
    return 0 if cmp.passed else 1


if __name__ == "__main__":
    sys.exit(main())
