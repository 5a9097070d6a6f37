"""One context, several questions, on the tiny world: query-aware eviction against query-agnostic memory.

Each sample is a `synthetic:passkey_k4` prompt (four labelled pass keys in noise, `tasks/synthetic/multi_needle.py`)
split into its context and one question per name ("What is the pass key of NAME?"). Every method answers the four
questions three ways at the same memory (32 sinks + 480 window, or that many tokens for the eviction methods):

* `single`: context and question as one prompt (the query-aware protocol, `harness run`'s);
* `multi-request`: the context prefilled once, each question from its own copy of the compressed cache;
* `multi-turn`: the questions in turns on one cache, each turn's reference answer in the history.

Writes `report.json`, `report.md` and `score_by_turn.{png,svg}` under `--output`. Usage::

    python -m studies.shared_context_tiny --samples 8 --output leaderboards/tiny/shared_context
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch

from baselines.engine import generate
from baselines.shared_context import multi_request, multi_turn
from harness.loading import loaded
from harness.presets import resolve_model
from tasks.registry import load_samples
from tasks.scoring import score

# the second tiny base answers passkey_k at 100% with full attention (leaderboards/tiny/round2_capacity.md); the
# first answers none, so it cannot tell memories apart
BASE, AHN_GDN = "leaderboards/tiny/round2/base", "leaderboards/tiny/round2/ahn-gdn"
METHODS = {"full": None, "swa": None, "ahn-gdn": AHN_GDN, "snapkv": None, "tova": None, "h2o": None}  # -> AHN
MODES = ("single", "multi-request", "multi-turn")
CUE = "\n\nThe pass key is"
TASK = "synthetic/passkey"  # scored like passkey: the first digit run must equal the key


def split(sample) -> tuple[str, list[str], list[str]]:
    """(context text, one question text per name, the names' keys) of a passkey_k sample."""
    asked = sample.extra["input"]
    cut = sample.prompt.rindex("\n\n" + asked)
    names = sample.extra["names"]
    keys = [re.search(rf"The pass key of {re.escape(n)} is (\d+)\.", sample.prompt).group(1) for n in names]
    questions = [f"\n\nWhat is the pass key of {n}?{CUE}" for n in names]
    return sample.prompt[:cut], questions, keys


def parts(tokenizer, context: str, question: str) -> tuple[list[int], list[int]]:
    """The prompt's ids cut where the question starts (the synthetic tasks take no chat template; a byte
    tokenizer, so the two parts concatenate to the whole prompt's ids)."""
    return tokenizer.encode(context), tokenizer.encode(question, add_special_tokens=False)


def run(samples: int, length: str, out: Path) -> dict:
    rows = []
    for method, checkpoint in METHODS.items():
        label = method
        bounded = method != "full"
        preset = resolve_model(BASE, method, 32 if bounded else None, 480 if bounded else None, checkpoint)
        with loaded(preset, "cpu", "float32") as lo:
            data = load_samples(f"synthetic:passkey_k4@{length}", limit=samples, tokenizer=lo.tokenizer)
            t0 = time.perf_counter()
            for sample in data:
                context, questions, keys = split(sample)
                cut = [parts(lo.tokenizer, context, q) for q in questions]
                ctx_ids = torch.tensor([cut[0][0]])
                q_ids = [torch.tensor([q]) for _, q in cut]
                answers = {
                    "single": [generate(lo.model, lo.method, torch.cat([ctx_ids, q], 1), 8, eos_token_id=258)
                               .tokens[0] for q in q_ids],
                    "multi-request": [t.tokens for t in multi_request(lo.model, lo.method, ctx_ids, q_ids, 8,
                                                                      eos_token_id=258)],
                    "multi-turn": [t.tokens for t in multi_turn(
                        lo.model, lo.method, ctx_ids, q_ids, 8, eos_token_id=258,
                        history=[torch.tensor([lo.tokenizer.encode(f" {k}", add_special_tokens=False)])
                                 for k in keys])]}
                for mode, said in answers.items():
                    for turn, (tokens, key) in enumerate(zip(said, keys, strict=True)):
                        text = lo.tokenizer.decode(tokens, skip_special_tokens=True)
                        rows.append({"method": label, "mode": mode, "sample": sample.id, "turn": turn,
                                     "prediction": text, "answer": key, "score": score(TASK, text, [key])})
            print(f"{label}: {len(data)} samples in {time.perf_counter() - t0:.1f} s", flush=True)
    return {"task": f"synthetic:passkey_k4@{length}", "samples": samples, "sinks": 32, "window": 480,
            "rows": rows}


def summarise(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.style import style_for

    table: dict[tuple[str, str, int], list[float]] = {}
    for r in report["rows"]:
        table.setdefault((r["method"], r["mode"], r["turn"]), []).append(r["score"])
    mean = {k: sum(v) / len(v) for k, v in table.items()}
    lines = [f"# One context, four questions: {report['task']}, {report['samples']} samples, 32 sinks + 480 "
             "window (or 512 kept tokens)", "", "Score by question (turn) index; `python "
             "studies/shared_context_tiny.py` wrote it.", "",
             "| method | mode | turn 1 | turn 2 | turn 3 | turn 4 | mean |", "|---|---|---:|---:|---:|---:|---:|"]
    for method in METHODS:
        for mode in MODES:
            cells = [mean[(method, mode, t)] for t in range(4)]
            lines.append(f"| {method} | {mode} | " + " | ".join(f"{c:.2f}" for c in cells)
                         + f" | {sum(cells) / 4:.2f} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, len(MODES), figsize=(12, 3.6), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        for method in METHODS:
            ax.plot(range(1, 5), [mean[(method, mode, t)] for t in range(4)], label=method,
                    **style_for(method).line_kwargs())
        ax.set_title(mode)
        ax.set_xlabel("question (turn) index")
        ax.set_xticks(range(1, 5))
    axes[0].set_ylabel("score")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(out / f"score_by_turn.{suffix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--length", default="2k")
    parser.add_argument("--output", type=Path, default=Path("leaderboards/tiny/shared_context"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    report = run(args.samples, args.length, args.output)
    (args.output / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    summarise(report, args.output)


if __name__ == "__main__":
    main()
