"""The score-based eviction methods through every command: list, info, run, compare and plot, each from one file
plus its registration line; each run's cost model equals its live cache, and its settings are in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baselines.costs import cache_bytes_actual
from baselines.model_configs import ModelDims
from baselines.registry import cost_model
from harness.cli import main
from harness.store import load_run

EVICTION = ["snapkv", "pyramidkv", "tova", "h2o", "knorm", "random"]
SETTINGS = ["--window", "48", "--sinks", "0", "--chunk", "128"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import save_tiny_model_folder

    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny-model"))


def test_list_names_every_eviction_method(capsys):
    assert main(["list", "methods"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EVICTION)


@pytest.mark.parametrize("name", EVICTION)
def test_info_prices_the_budget(model_dir, name, capsys):
    assert main(["info", "--model", str(model_dir), "--method", name, *SETTINGS[:4], "--length", "300",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    dims = ModelDims.from_hf_config(json.loads((model_dir / "config.json").read_text()))
    assert doc["method"] == name
    assert doc["cache_bytes_actual"] == cache_bytes_actual(dims, cost_model(name, sinks=0, window=48), 300, 0, 48)


def test_run_compare_plot(model_dir, tmp_path, capsys):
    runs = {}
    for name in [*EVICTION, "swa"]:
        out = tmp_path / name
        assert main(["run", "--model", str(model_dir), "--method", name, *SETTINGS,
                     "--tasks", "synthetic:passkey@512", "--limit", "2", "--max-new-tokens", "3",
                     "--output", str(out), "--no-progress"]) == 0
        runs[name] = out
        records = load_run(out).records
        assert len(records) == 2 and all(r["status"] == "ok" for r in records)
        assert all(r["cache_bytes_measured"] == r["cache_bytes_actual"] for r in records), name
    swa_bytes = load_run(runs["swa"]).records[0]["cache_bytes_actual"]
    assert load_run(runs["snapkv"]).records[0]["cache_bytes_actual"] == swa_bytes  # same budget, same KV bytes
    manifest = json.loads((runs["snapkv"] / "manifest.json").read_text())
    assert manifest["config"]["method"] == {"method": "snapkv", "sinks": 0, "window": 48, "budget": 48,
                                            "window_size": 32, "kernel_size": 5, "pooling": "avg"}
    for name in EVICTION:
        capsys.readouterr()
        assert main(["compare", str(runs["swa"]), str(runs[name])]) in (0, 1)
        assert name in capsys.readouterr().out
    assert main(["plot", str(runs["swa"]), *(str(runs[n]) for n in EVICTION),
                 "--output", str(tmp_path / "plots")]) == 0
    assert sorted(p.suffix for p in (tmp_path / "plots").iterdir()) == [".png"] * 3 + [".svg"] * 3


def test_static_decode_is_refused_by_name(model_dir, tmp_path, capsys):
    code = main(["run", "--model", str(model_dir), "--method", "tova", *SETTINGS, "--decode", "static",
                 "--tasks", "synthetic:passkey@512", "--limit", "1", "--output", str(tmp_path / "r"),
                 "--no-progress"])
    assert code == 2
    assert "no static decode layout" in capsys.readouterr().err
