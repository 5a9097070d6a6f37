"""Prefill and decode seconds per sample, per method and length, from run records, with the device named.

    python -m bench.speed_table runs/coder --lengths 32k,128k [--output speed.md]

Each argument is a run folder or a folder of run folders (one per preset). See harness/speed.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from harness.speed import speed_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders, or folders holding one run folder per preset")
    ap.add_argument("--lengths", help="comma-separated length buckets to show, in order (default: every bucket)")
    ap.add_argument("--output", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    lengths = [s.strip() for s in args.lengths.split(",") if s.strip()] if args.lengths else None
    try:
        text = speed_table(args.runs, lengths)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
