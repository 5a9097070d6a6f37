"""Check the paper's claims on the coder presets' comparison (real base, real-text tasks); write a table beside it.

    python -m studies.check_coder_claims leaderboards/coder-0.5b/runs    # -> leaderboards/coder-0.5b/claims.{md,json}

The folder holds one run folder per method (full, swa, ct-*, ahn-*), run on the same samples. Exit code 1 when a
claim does not hold (the table says which, with the numbers). See studies/real_claims.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from harness.store import RunError
    from studies.real_claims import write_real_claims

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="folder holding one run folder per method (a `harness run --output`)")
    ap.add_argument("--out", type=Path, default=None, help="output stem (default: <root>/../claims)")
    args = ap.parse_args(argv)
    runs = sorted(p for p in args.root.iterdir() if (p / "manifest.json").exists()) if args.root.is_dir() else []
    if not runs:
        print(f"error: {args.root}: no run folders (folders with a manifest.json)", file=sys.stderr)
        return 2
    out = args.out or args.root.parent / "claims"
    try:
        claims = write_real_claims(runs, out, title="Qwen2.5-Coder-0.5B-Instruct against the paper's claims")
    except (ValueError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for c in claims:
        print(f"[{'ok' if c.holds else 'FAIL'}] {c.name}: {c.detail}")
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0 if all(c.holds for c in claims) else 1


if __name__ == "__main__":
    sys.exit(main())
