"""Time the generation of the real-text tasks with a real tokenizer: every task × length × N samples.

    python -m bench.bench_realtext --tokenizer /path/to/model [--n 32] [--lengths 4k,8k,...] [--tasks ...]

Prints, per task and length, the wall and CPU seconds, the shortest prompt and how many needles lie beyond a
128 + 3,968-token window, then the totals (`docs/REALTEXT.md` quotes a run of it).
"""

from __future__ import annotations

import argparse
import time

from tasks import realtext as rt
from tasks.families import parse_length


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True, help="a folder (or Hub id) with the tokenizer")
    ap.add_argument("--n", type=int, default=rt.DEFAULT_N_PER_LENGTH, help="samples per task and length")
    ap.add_argument("--lengths", default="4k,8k,16k,32k,64k,128k")
    ap.add_argument("--tasks", default=",".join(rt.TASKS))
    args = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    lengths = [parse_length(x) for x in args.lengths.split(",")]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for task in args.tasks.split(","):
        for n in lengths:
            wall, cpu = time.perf_counter(), time.process_time()
            samples = rt.load(task, [n], args.n, tokenizer=tok)
            print(f"{task:14s} {n:>7d}  wall {time.perf_counter() - wall:7.1f} s  cpu {time.process_time() - cpu:7.1f} s"
                  f"  min prompt {min(s.extra['prompt_tokens'] for s in samples):>7d}"
                  f"  beyond window {sum(s.extra['beyond_window'] for s in samples):>3d}/{len(samples)}", flush=True)
    print(f"total: wall {time.perf_counter() - wall0:.1f} s, cpu {time.process_time() - cpu0:.1f} s")


if __name__ == "__main__":
    main()
