#!/usr/bin/env bash
# The installed tool, as a user gets it: build the wheel, install it on its own (no editable checkout on the
# path), and run `ahn-harness run --chat-template on` from a folder that holds its own `tasks/` package.
# Dependencies come from .venv (scripts/setup_venv.sh); only the project itself is taken from the wheel.
# Checks: the chat template is in the wheel, the console script is not shadowed by the local `tasks/`,
# and `python -m harness` there fails with the error that names the local folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
here=$PWD
work=$(mktemp -d)
rm -rf build  # setuptools' build folder: stale files from an older tree would go into the wheel
trap 'rm -rf "$work" "$here/build"' EXIT
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" . > "$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/ahn_harness-*.whl)
.venv/bin/python -c "import sys, zipfile; sys.exit('leaderboards/tiny/base/chat_template.jinja' not in zipfile.ZipFile(sys.argv[1]).namelist())" "$wheel" \
  || { echo "the wheel lacks the chat template"; exit 1; }
.venv/bin/python -m pip install -q --no-deps --target "$work/site" "$wheel"
imported=$(cd "$work" && PYTHONPATH="$work/site" "$here/.venv/bin/python" -c "import harness; print(harness.__file__)")
[ "$imported" = "$work/site/harness/__init__.py" ] || { echo "harness imported from $imported, not the wheel"; exit 1; }
mkdir -p "$work/user/tasks"
echo "# a user's own package" > "$work/user/tasks/__init__.py"
cd "$work/user"
export PYTHONPATH="$work/site"
"$work/site/bin/ahn-harness" run --model tiny-full --tasks synthetic:passkey@512 --limit 2 --chat-template on \
  --output "$work/user/out" --quiet
grep -q '"chat_template":true' "$work/user/out/samples.jsonl" || { echo "the run did not use the chat template"; exit 1; }
if "$here/.venv/bin/python" -m harness list 2> err.txt; then
  echo "python -m harness ran with a foreign tasks/ first on sys.path"; exit 1
fi
grep -q "ShadowedPackageError.*$work/user/tasks" err.txt || { cat err.txt; exit 1; }
echo "check_wheel: the wheel runs from a folder with its own tasks/ package, chat template included"
