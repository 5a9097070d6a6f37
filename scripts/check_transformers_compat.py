"""The tiny base as any transformers user gets it: plain AutoTokenizer + AutoModelForCausalLM, greedy generate.

Two steps, so the second can run under another transformers than the harness's:

    python scripts/check_transformers_compat.py --write prompts.json     # harness env: the default job's
        # tiny-full prompts (text and ids, prepared by the harness) and the committed predictions
    PYTHONPATH=/tmp/tf457 python scripts/check_transformers_compat.py --check prompts.json
        # any transformers (4.57 too): the text must tokenize to the same ids, RoPE theta must be the
        # base's, and greedy generation must give the committed predictions

Exit 1 on any difference, naming the sample. `scripts/check_transformers_ends.sh` runs it at both ends.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "leaderboards" / "tiny" / "base"
REFERENCE = ROOT / "leaderboards" / "tiny" / "default-run" / "tiny-full"


def write_prompts(out: Path) -> int:
    """The default job's tiny-full prompts exactly as the harness feeds them, with the committed answers."""
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from harness.cli import DEFAULT_LIMIT, DEFAULT_TASKS
    from harness.store import load_run
    from tasks.prompting import prepare
    from tasks.registry import load_samples, task_settings

    tokenizer = AutoTokenizer.from_pretrained(BASE)
    reference = {r["key"]: r for r in load_run(REFERENCE).records}
    items = []
    for sample in load_samples(DEFAULT_TASKS, limit=DEFAULT_LIMIT, tokenizer=tokenizer, seed=0):
        task = task_settings(sample)
        prepared = prepare(sample, tokenizer, task.truncation, task.chat_template)
        rec = reference[sample.key]
        assert rec["prompt_tokens"] == len(prepared.input_ids), sample.key
        items.append({"key": sample.key, "text": prepared.text, "input_ids": prepared.input_ids,
                      "max_new_tokens": rec["max_new_tokens"], "prediction": rec["prediction"]})
    out.write_text(json.dumps({"base": str(BASE), "items": items}) + "\n")
    print(f"wrote {len(items)} prompts to {out}")
    return 0


def check(path: Path, limit: int | None) -> int:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    doc = json.loads(path.read_text())
    base = doc["base"]
    config = AutoConfig.from_pretrained(base)
    params = getattr(config, "rope_parameters", None) or {}
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    problems = []
    if theta != 1e6:
        problems.append(f"RoPE theta {theta}, expected 1e6")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    items = doc["items"][:limit] if limit else doc["items"]
    same = 0
    for item in items:
        ids = tokenizer.encode(item["text"], add_special_tokens=False)
        if ids != item["input_ids"]:
            problems.append(f"{item['key']}: the prompt text tokenizes differently")
            continue
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=item["max_new_tokens"], do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
        if text != item["prediction"]:
            problems.append(f"{item['key']}: generated {text!r}, the harness answered {item['prediction']!r}")
        else:
            same += 1
    print(f"transformers {transformers.__version__} ({type(tokenizer).__name__}): {same}/{len(items)} greedy "
          f"answers equal the harness's, RoPE theta {theta:g}")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, help="write the prompts and the committed answers here")
    group.add_argument("--check", type=Path, help="check a file written by --write under this transformers")
    ap.add_argument("--limit", type=int, help="first N prompts only")
    args = ap.parse_args(argv)
    return write_prompts(args.write) if args.write else check(args.check, args.limit)


if __name__ == "__main__":
    sys.exit(main())
