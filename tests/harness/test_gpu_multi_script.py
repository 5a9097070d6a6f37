"""bench/gpu_multi.py end to end in its tiny CPU mode (toy shapes, two gloo processes).

The GPU run is the same code with the 3B shape; here the script must still find that a two-process
`harness run` gives the one-process per-sample results and that a two-process data-parallel AHN step gives the
one-process gradients (a duplicated shard gives a relative error of ~0.9, a sum instead of a mean 1.0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~40 s: two-process runs and steps equal one in tests/harness/test_runner.py, tests/ahn/test_train.py
def test_gpu_multi_tiny(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "bench.gpu_multi", "--tiny", "--out", str(out), "--work", str(tmp_path / "work")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "multi_gpu.json").read_text())
    assert report["ok"] is True and report["gpus"] == 2

    ev = report["eval"]
    assert ev["identical"] is True and ev["differing_ids"] == []
    assert ev["runs"]["1"]["samples"] == ev["runs"]["2"]["samples"] == 4
    assert ev["runs"]["2"]["ok"] == 4 and ev["runs"]["2"]["nonempty_predictions"] > 0
    one = [json.loads(x) for x in (out / "eval_n1_samples.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (out / "eval_n2_samples.jsonl").read_text().splitlines()]
    assert [r["prediction"] for r in one] == [r["prediction"] for r in two]

    tr = report["train"]
    assert tr["runs"]["1"]["world"] == 1 and tr["runs"]["2"]["world"] == 2
    assert [r["sequences"] for r in tr["runs"]["2"]["ranks"]] == [[0], [1]]
    assert tr["runs"]["1"]["ranks"][0]["sequences"] == [0, 1]
    assert tr["same_weights"] is True and tr["grad_norm"] > 0
    assert tr["rel_err_all"] <= 2e-2 and tr["pass"] is True
    assert set(tr["rel_err_by_param"]) == {"b_proj.weight", "g_proj.weight", "o_norm.weight", "o_proj.weight"}
    assert "identical between 1 and 2 processes: **yes**" in (out / "multi_gpu.md").read_text()
