"""The runnable lm-eval example outside tests/ (`examples/lm_eval_tiny.sh`): its task loads from the repository
root as the script runs it, and through the bridge the tiny world answers as the window arithmetic says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

pytestmark = pytest.mark.usefixtures("lm_eval_builtin_tasks_indexed_once")
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "lm_eval_tiny"
TASK = "ahn_tiny_passkey"
SINKS, WINDOW = 32, 480  # the tiny presets (harness/presets.py)


def test_the_script_names_what_exists():
    script = (REPO / "examples" / "lm_eval_tiny.sh").read_text()
    assert subprocess.run(["bash", "-n", str(REPO / "examples" / "lm_eval_tiny.sh")]).returncode == 0
    assert f"--tasks {TASK}" in script and "--include_path examples/lm_eval_tiny" in script
    assert f"task: {TASK}" in (EXAMPLE / "tiny_passkey.yaml").read_text()
    assert "examples/lm_eval_tiny/tiny_passkey.jsonl" in (EXAMPLE / "tiny_passkey.yaml").read_text()


def _key_outside_window(doc: dict) -> bool:
    """The byte tokenizer counts one token per UTF-8 byte: the key is visible to the last prompt token only
    within the last WINDOW tokens (or among the first SINKS)."""
    data = doc["prompt"].encode()
    at = data.index(doc["answer"].encode())
    return SINKS <= at < len(data) - WINDOW


def test_the_example_runs_through_the_bridge(monkeypatch):
    from harness import lm_eval_bridge as bridge

    monkeypatch.chdir(REPO)  # data_files is relative to the repository root, as the script runs it
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    docs = [json.loads(x) for x in (EXAMPLE / "tiny_passkey.jsonl").read_text().splitlines()]
    outside = [_key_outside_window(d) for d in docs]
    assert sum(outside) == 3  # three of the four keys lie beyond the window: only a memory can answer them
    scores = {}
    for preset in ("tiny-swa", "tiny-ahn-gdn"):
        res = bridge.evaluate(f"preset={preset},device=cpu", [TASK], include_path=str(EXAMPLE), log_samples=True)
        samples = sorted(res["samples"][TASK], key=lambda s: s["doc_id"])
        scores[preset] = [s["exact_match"] for s in samples]
    # sinks + window cannot see a key that left the window
    assert all(score == 0.0 for score, out in zip(scores["tiny-swa"], outside) if out)
    # the trained AHN-GDN of the tiny world keeps them in its memory
    assert scores["tiny-ahn-gdn"] == [1.0] * len(docs)
