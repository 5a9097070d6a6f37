"""The second tiny world's three questions read off per-sample records; a result file, a table and a figure each.

    python -m studies.check_round2 length   leaderboards/tiny/round2/length    # -> leaderboards/tiny/round2_length.*
    python -m studies.check_round2 capacity leaderboards/tiny/round2/capacity  # -> leaderboards/tiny/round2_capacity.*
    python -m studies.check_round2 kv       leaderboards/tiny/round2kv/kv      # -> leaderboards/tiny/round2_kv.*

ROOT holds `harness run` folders at any depth (one per job is fine; they are merged per method label).
Writes <out>.json, <out>.md and <out>.png/.svg. Exit code 2 when there is nothing to read; for `kv`, 1 when full
attention misses 90% somewhere up to the training length (the base does not solve the task). See studies/round2.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from harness.store import RunError
    from studies.round2 import QUESTIONS, write_report

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("question", choices=list(QUESTIONS))
    ap.add_argument("root", type=Path, nargs="+", help="folder(s) holding the run folders of that question")
    ap.add_argument("--out", type=Path, help="output stem (default: leaderboards/tiny/round2_<question>)")
    ap.add_argument("--training-length", type=int, default=4096, help="kv: longest sequence the base was trained on")
    args = ap.parse_args(argv)
    out = args.out or REPO / "leaderboards" / "tiny" / f"round2_{args.question}"
    options = {"training_length": args.training_length} if args.question == "kv" else {}
    try:
        rep = write_report(args.question, args.root, out, **options)
    except (ValueError, RunError) as e:
        print(f"check_round2: {e}", file=sys.stderr)
        return 2
    if args.question == "length":
        for label, m in rep["methods"].items():
            print(f"{label}: below 50% from {m['below_half'] or 'none up to ' + m['longest']}")
    elif args.question == "capacity":
        for label, m in rep["methods"].items():
            print(f"{label}: holds k = {m['largest_k_at_half']} at >= 50%")
    else:
        print(f"full attention reaches 90% up to {args.training_length}: {rep['teacher_ok']}")
    print(f"wrote {out.with_suffix('.md')}, .json and the figure")
    return 1 if args.question == "kv" and not rep["teacher_ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
