"""One context, several questions, on the tiny world: every method through `harness run --shared-context`.

Each sample is a `synthetic:passkey_k4` prompt (four labelled pass keys in noise, `tasks/synthetic/multi_needle.py`)
that the harness cuts into its context and one question per name (`harness/shared_runner.py`). Every method
registered for the tiny base answers the four questions three ways at the same memory (32 sinks + 480 window,
or 512 kept tokens for the eviction methods; full attention keeps all):

* `single`: context and question as one prompt (the query-aware protocol, `harness run`'s);
* `multi-request`: the context prefilled once, each question from its own copy of the compressed cache;
* `multi-turn`: the questions in turns on one cache, each turn's reference answer in the history.

The run folders (one per method and mode, resumable) go under `--runs`; `report.json`, `report.md` and
`score_by_turn.{png,svg}` under `--output`. Usage::

    OMP_NUM_THREADS=1 python -m studies.shared_context_tiny --samples 8 --output leaderboards/tiny/shared_context
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.cli import main as harness
from harness.store import load_run

ROUND2 = Path("leaderboards/tiny/round2")  # the second tiny base answers passkey_k at 100% with full attention
METHODS = {"full": None, "swa": None, "ct-max": None, "ct-avg": None, "ahn-gdn": ROUND2 / "ahn-gdn",
           "ahn-dn": ROUND2 / "ahn-dn", "ahn-mamba2": ROUND2 / "ahn-mamba2", "snapkv": None, "pyramidkv": None,
           "tova": None, "h2o": None, "knorm": None, "random": None}
MODES = ("single", "multi-request", "multi-turn")
SINKS, WINDOW = 32, 480
JITTER = 0.003  # the figure's lines are offset by at most +-0.018 so that equal scores stay visible


def command(method: str, mode: str, task: str, samples: int, out: Path) -> list[str]:
    """The `harness` command line of one method and mode."""
    argv = ["run", "--model", str(ROUND2 / "base"), "--method", method, "--tasks", task, "--limit", str(samples),
            "--shared-context", mode, "--device", "cpu", "--dtype", "float32", "--output", str(out)]
    if method != "full":
        argv += ["--sinks", str(SINKS), "--window", str(WINDOW)]
    if METHODS[method] is not None:
        argv += ["--checkpoint", str(METHODS[method])]
    return argv


def run(samples: int, length: str, runs: Path) -> dict:
    task = f"synthetic:passkey_k4@{length}"
    rows = []
    for method in METHODS:
        for mode in MODES:
            out = runs / method / mode
            argv = command(method, mode, task, samples, out)
            print("python -m harness " + " ".join(argv), flush=True)
            if harness(argv) != 0:
                sys.exit(f"{method} {mode} failed")
            for r in load_run(out).records:
                rows.append({"method": method, "mode": mode, "sample": r["id"], "turn": r["turn"],
                             "prompt_tokens": r["prompt_tokens"], "prediction": r["prediction"],
                             "answer": r["answers"][0], "score": r["score"],
                             "cache_bytes_measured": r["cache_bytes_measured"]})
    return {"task": task, "samples": samples, "sinks": SINKS, "window": WINDOW,
            "command": "python -m harness " + " ".join(command("full", "MODE", task, samples, runs / "METHOD/MODE"))
            .replace("--method full", "--method METHOD"),
            "rows": rows}


def _means(report: dict) -> tuple[dict[tuple[str, str, int], float], dict[str, float]]:
    table: dict[tuple[str, str, int], list[float]] = {}
    cache: dict[str, list[int]] = {}
    for r in report["rows"]:
        table.setdefault((r["method"], r["mode"], r["turn"]), []).append(r["score"])
        if r["mode"] == "multi-request":  # the compressed context every question is asked of
            cache.setdefault(r["method"], []).append(r["cache_bytes_measured"])
    return {k: sum(v) / len(v) for k, v in table.items()}, {k: sum(v) / len(v) for k, v in cache.items()}


def summarise(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.style import style_for

    mean, cache = _means(report)
    turns = sorted({r["turn"] for r in report["rows"]})
    lines = [f"# One context, four questions: {report['task']}, {report['samples']} samples, {SINKS} sinks + "
             f"{WINDOW} window (or {SINKS + WINDOW} kept tokens); full attention keeps all", "",
             "Score (exact pass key, 0-1) by question (turn) index, each method and mode one `harness run "
             "--shared-context` run folder:", "", "    " + report["command"], "",
             "with METHOD one of " + ", ".join(METHODS) + " (`--sinks/--window` for all but full; `--checkpoint "
             "leaderboards/tiny/round2/<method>` for the AHN methods) and MODE one of " + ", ".join(MODES)
             + "; this table and figure by `OMP_NUM_THREADS=1 python -m studies.shared_context_tiny --samples "
             f"{report['samples']} --output leaderboards/tiny/shared_context`. Cache: bytes of the live cache after "
             "the context prefill (mean over samples).", "",
             "| method | cache | mode | " + " | ".join(f"turn {t + 1}" for t in turns) + " | mean |",
             "|---|---:|---|" + "---:|" * (len(turns) + 1)]
    for method in METHODS:
        for mode in MODES:
            cells = [mean[(method, mode, t)] for t in turns]
            lines.append(f"| {method} | {cache[method] / 2**20:.2f} MiB | {mode} | "
                         + " | ".join(f"{c:.2f}" for c in cells) + f" | {sum(cells) / len(cells):.2f} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, len(MODES), figsize=(14, 4.4), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        for i, method in enumerate(METHODS):
            jitter = (i - (len(METHODS) - 1) / 2) * JITTER  # lines at equal scores stay apart
            ax.plot([t + 1 for t in turns], [mean[(method, mode, t)] + jitter for t in turns], label=method,
                    **style_for(method).line_kwargs())
        ax.set_title(mode)
        ax.set_xlabel("question (turn) index")
        ax.set_xticks([t + 1 for t in turns])
        ax.set_ylim(-0.08, 1.08)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (pass key exact)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.suptitle(f"{report['task']}, {report['samples']} samples, {SINKS} + {WINDOW} kept tokens (lines offset by "
                 f"at most {JITTER * (len(METHODS) - 1) / 2:.3f} to stay apart)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.89, 1))
    for suffix in ("png", "svg"):
        fig.savefig(out / f"score_by_turn.{suffix}", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--length", default="2k")
    parser.add_argument("--runs", type=Path, default=Path("runs/shared_context_tiny"),
                        help="the run folders (the same command resumes them)")
    parser.add_argument("--output", type=Path, default=Path("leaderboards/tiny/shared_context"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    report = run(args.samples, args.length, args.runs)
    (args.output / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    summarise(report, args.output)


if __name__ == "__main__":
    main()
