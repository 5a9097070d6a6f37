"""``python -m ahn.train --config FILE [key=value ...] [--max-steps N] [--dry-run]``: train AHN modules.

Overrides are dotted keys of :class:`ahn.train.config.TrainConfig` with JSON values (strings may be bare):
``python -m ahn.train --config ahn/train/configs/qwen2.5-3b-gdn.json base=/models/Qwen2.5-3B-Instruct
optim.lr=5e-5 window.mode=fixed``. Errors in the config, the data or a resume are reported in one line
(exit status 2), not as a traceback.
"""

from __future__ import annotations

import argparse
import sys

from ahn.train.config import ConfigError, load_config
from ahn.train.data import DataError
from ahn.train.windows import WindowError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ahn.train", description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="JSON config file (see ahn/train/configs/)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=3e-4 data.seq_len=1024")
    ap.add_argument("--max-steps", type=int, help="stop this invocation at this global step (resume later)")
    ap.add_argument("--dry-run", action="store_true", help="one micro-batch forward+backward, no update, no files")
    ap.add_argument("--output-dir", help="where the AHN checkpoint, log and summary go")
    ap.add_argument("--resume", help="'auto' (default), 'never', or a checkpoint folder")
    ap.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    try:
        args = ap.parse_intermixed_args(argv)  # overrides may come before or after the flags
    except SystemExit as e:  # argparse printed its usage and error
        return e.code if isinstance(e.code, int) else 2
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if args.dry_run:
        overrides.append("dry_run=true")
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.resume:
        overrides.append(f"resume={args.resume}")
    try:
        cfg = load_config(args.config, overrides)
        if args.print_config:
            import json

            from ahn.train.config import config_hash, to_dict

            print(json.dumps({**to_dict(cfg), "config_hash": config_hash(cfg)}, indent=2))
            return 0
        from ahn.train.loop import train

        result = train(cfg)
    except (ConfigError, DataError, WindowError) as e:
        print(f"ahn.train: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable output or checkpoint folder, a full disk
        where = f"{e.filename}: " if e.filename else ""
        print(f"ahn.train: error: {where}{e.strerror or e}; pass an output_dir you can write to", file=sys.stderr)
        return 2
    status = "complete" if result.complete else f"stopped at step {result.steps_done}"
    print(f"ahn.train: {status}; outputs in {result.output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
