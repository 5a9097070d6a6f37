"""docs/ADDING_A_METHOD.md step by step, with the method of tests/plugins/ct_last.py (one file, one line):
list, info, run, compare and plot work with it, and the shared method tests cover it without an edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baselines.costs import cache_bytes_actual, default_ct_slots
from baselines.method_costs import CompressiveCosts
from baselines.model_configs import ModelDims
from baselines.registry import cost_model, method_names
from harness.cli import main
from harness.store import load_run

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ["--window", "64", "--sinks", "4"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import save_tiny_model_folder

    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny-model"))


def test_step3_one_line_registers_it_everywhere():
    assert "ct-last" in method_names()
    from tests.baselines import test_methods

    assert "ct-last" in test_methods.METHODS  # step 5: the shared method tests iterate over it
    env = {**os.environ, "AHN_HARNESS_PLUGINS": "tests.plugins.ct_last"}
    listed = subprocess.run([sys.executable, "-m", "harness", "list", "methods"], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "ct-last" in listed and "ahn-mamba2" in listed
    plain = subprocess.run([sys.executable, "-m", "harness", "list", "methods"], cwd=REPO, capture_output=True,
                           text=True, check=True, env={k: v for k, v in os.environ.items()
                                                       if k != "AHN_HARNESS_PLUGINS"}).stdout
    assert "ct-last" not in plain  # registered by its own module, not by the repository


def test_step4_info_prices_it_with_its_cost_model(model_dir, capsys):
    assert main(["info", "--model", str(model_dir), "--method", "ct-last", *SETTINGS, "--length", "100",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    dims = ModelDims.from_hf_config(json.loads((model_dir / "config.json").read_text()))
    assert doc["method"] == "ct-last" and doc["ct_slots"] == default_ct_slots(dims)
    # the registered ratio (2) is the one priced: 32 evicted tokens fill 16 slots, at ratio 4 only 8
    assert doc["cache_bytes_actual"] == cache_bytes_actual(dims, cost_model("ct-last"), 100, 4, 64)
    assert doc["cache_bytes_actual"] != cache_bytes_actual(dims, CompressiveCosts(ratio=4), 100, 4, 64)


def test_step4_run_compare_plot(model_dir, tmp_path, capsys):
    runs = {}
    for method in ("ct-last", "swa"):
        out = tmp_path / method
        assert main(["run", "--model", str(model_dir), "--method", method, *SETTINGS, "--chunk", "128",
                     "--tasks", "synthetic:passkey@512", "--limit", "2", "--max-new-tokens", "3",
                     "--output", str(out), "--no-progress"]) == 0
        runs[method] = out
    records = load_run(runs["ct-last"]).records
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    # the cost model agrees with the live cache, byte for byte, on prompts that overflow the slot FIFO
    assert all(r["cache_bytes_measured"] == r["cache_bytes_actual"] for r in records)
    assert records[0]["cache_bytes_actual"] > load_run(runs["swa"]).records[0]["cache_bytes_actual"]
    manifest = json.loads((runs["ct-last"] / "manifest.json").read_text())
    assert manifest["config"]["method"]["method"] == "ct-last" and manifest["config"]["method"]["ratio"] == 2
    capsys.readouterr()
    assert main(["compare", str(runs["swa"]), str(runs["ct-last"])]) in (0, 1)
    assert "ct-last" in capsys.readouterr().out
    assert main(["plot", str(runs["swa"]), str(runs["ct-last"]), "--output", str(tmp_path / "plots")]) == 0
    assert sorted(p.suffix for p in (tmp_path / "plots").iterdir()) == [".png"] * 3 + [".svg"] * 3
