#!/usr/bin/env bash
# The supported transformers range at its ends (pyproject.toml: transformers>=5.17,<6; .venv has the newest).
#  * transformers 4.57 (outside the range): the tiny base still loads with plain AutoTokenizer /
#    AutoModelForCausalLM and greedy generate gives the harness's committed answers (the checkpoint is portable),
#    while `harness run` refuses that version by name.
#  * transformers 5.17 (the lower end): `harness run` of four tiny presets gives the committed records'
#    predictions and scores sample for sample, and plain transformers gives the answers too.
# Each other version is installed into a folder under a temporary directory and put first on PYTHONPATH;
# everything else comes from .venv. Needs the package index (a few MB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
py=.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pipq() { $py -m pip install -q --disable-pip-version-check --no-deps --target "$@" 2>&1 | grep -v "^WARNING: " || true; }
pipq "$work/tf457" "transformers==4.57.6" "huggingface-hub==0.36.2" "tokenizers==0.22.2"
pipq "$work/tf517" "transformers==5.17.0" "huggingface-hub==1.33.0" "httpx==0.28.1" "httpcore==1.0.9" "h11==0.16.0" \
  "anyio==4.12.1" "sniffio==1.3.1"
$py scripts/check_transformers_compat.py --write "$work/prompts.json"
PYTHONPATH="$work/tf457" $py scripts/check_transformers_compat.py --check "$work/prompts.json"
if PYTHONPATH="$work/tf457" $py -m harness run --model tiny-full --limit 1 --output "$work/r457" --quiet 2> "$work/err457"; then
  echo "harness run accepted transformers 4.57"; exit 1
fi
grep -q "transformers 4.57.6 is not supported" "$work/err457" || { cat "$work/err457"; exit 1; }
PYTHONPATH="$work/tf517" $py scripts/check_transformers_compat.py --check "$work/prompts.json" --limit 8
PYTHONPATH="$work/tf517" $py -m harness run --model tiny-full,tiny-swa,tiny-ct-max,tiny-ahn-gdn --output "$work/r517" --quiet
PYTHONPATH="$work/tf517" $py - "$work/r517" <<'PY'
import sys
from pathlib import Path

from harness.store import load_run

ref_root = Path("leaderboards/tiny/default-run")
bad = 0
for run_dir in sorted(Path(sys.argv[1]).iterdir()):
    if not (run_dir / "manifest.json").exists():
        continue
    ref = {r["key"]: r for r in load_run(ref_root / run_dir.name).records}
    got = load_run(run_dir)
    assert got.manifest["provenance"]["versions"]["transformers"] == "5.17.0"
    diff = [r["key"] for r in got.records if (r["prediction"], r["score"]) != (ref[r["key"]]["prediction"], ref[r["key"]]["score"])]
    print(f"{run_dir.name}: {len(got.records) - len(diff)}/{len(got.records)} predictions equal the reference on transformers 5.17")
    bad += len(diff) + (len(got.records) != len(ref))
sys.exit(1 if bad else 0)
PY
echo "check_transformers_ends: 4.57 loads the tiny base identically (and is refused by the harness), 5.17 runs the harness identically"
