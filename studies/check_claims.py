"""Check the paper's qualitative claims on a comparison run of the tiny presets; write a table beside it.

    python -m studies.check_claims leaderboards/tiny/claims-run      # -> leaderboards/tiny/claims.{md,json}

Exit code 1 when a claim does not hold (the table says which and by how much). See studies/claims.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from harness.store import RunError
    from studies.claims import write_claims

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="folder holding one run folder per method (a `harness run --output`)")
    ap.add_argument("--out", type=Path, default=None, help="output stem (default: <root>/../claims)")
    ap.add_argument("--training-length", type=int, default=4096, help="longest sequence the base was trained on")
    args = ap.parse_args(argv)
    runs = sorted(p for p in args.root.iterdir() if (p / "manifest.json").exists())
    if not runs:
        print(f"{args.root}: no run folders (folders with a manifest.json)", file=sys.stderr)
        return 2
    out = args.out or args.root.parent / "claims"
    try:
        claims = write_claims(runs, out, args.training_length, title="The tiny world against the paper's claims")
    except (ValueError, RunError) as e:  # e.g. no swa run among the folders: say which, no traceback
        print(f"check_claims: {e}", file=sys.stderr)
        return 2
    for c in claims:
        print(f"[{'ok' if c.holds else 'FAIL'}] {c.name}: {c.detail}")
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0 if all(c.holds for c in claims) else 1


if __name__ == "__main__":
    sys.exit(main())
