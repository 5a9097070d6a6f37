"""A method is the one source of its settings and declares its identity once, with its registration.

Two methods of the test plugins, each one file plus one registration line (docs/ADDING_A_METHOD.md):
`tests/plugins/sinks_only.py` (settings of its own: 4 sinks, a window of one, no `window` argument) and
`tests/plugins/ct_learned.py` (trained: weights in a checkpoint format of its own, a paper row, a plot style).
Both go through every command with no edit elsewhere; and no product code tests a method's name.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baselines.costs import estimate, kv_cache_bytes, paper_cache_bytes, paper_mixing_flops
from baselines.model_configs import ModelDims
from baselines.registry import cost_model_of, get_spec, make_method, method_names
from harness.cli import main
from harness.store import load_run

REPO = Path(__file__).resolve().parents[2]
TASK = ["--tasks", "synthetic:passkey@512", "--limit", "2", "--max-new-tokens", "3", "--chunk", "128",
        "--no-progress"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import save_tiny_model_folder

    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny-model"))


def _dims(model_dir: Path) -> ModelDims:
    return ModelDims.from_hf_config(json.loads((model_dir / "config.json").read_text()))


def _keys_named(tree, key: str) -> list:
    """Every value stored under `key` anywhere in a JSON tree."""
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k == key] + [x for v in tree.values() for x in _keys_named(v, key)]
    if isinstance(tree, list):
        return [x for v in tree for x in _keys_named(v, key)]
    return []


# ------------------------------------------------------------------------------ the sinks-only method


def test_sinks_only_info_reports_its_own_settings_and_costs(model_dir, capsys):
    dims = _dims(model_dir)
    assert main(["info", "--model", str(model_dir), "--method", "sinks-only", "--length", "2048",
                 "--dtype-bytes", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["sinks"], doc["window"]) == (4, 1)  # the method's defaults, not the paper's 128 + 32,640
    kept = kv_cache_bytes(dims, 4 + 1, 4)  # 5 tokens' keys and values, 4 bytes an element
    assert doc["cache_bytes"] == doc["cache_bytes_actual"] == kept
    assert doc["flops_mixing"] < paper_mixing_flops(dims, "full", 2048)
    assert main(["info", "--model", str(model_dir), "--method", "sinks-only", "--length", "2k"]) == 0
    assert "(sinks 4, window 1)" in capsys.readouterr().out
    assert main(["info", "--model", str(model_dir), "--method", "sinks-only", "--sinks", "8", "--length", "2k",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sinks"] == 8
    # a setting the method does not take is one error line naming the settings it does take
    assert main(["info", "--model", str(model_dir), "--method", "sinks-only", "--window", "64",
                 "--length", "2k"]) == 2
    assert "takes no window; its settings: sinks" in capsys.readouterr().err


def test_sinks_only_run_costs_equal_the_live_cache_with_one_window_and_no_false_warning(model_dir, tmp_path,
                                                                                       caplog):
    out = tmp_path / "sinks-only"
    with caplog.at_level(logging.INFO, logger="harness.runner"):
        assert main(["run", "--model", str(model_dir), "--method", "sinks-only", *TASK, "--output", str(out)]) == 0
    assert "ran exactly as full attention" not in caplog.text
    assert "SinksOnly(sinks=4, window=1)" in caplog.text  # run shows the settings it runs with
    records = load_run(out).records
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    dims = _dims(model_dir)
    for r in records:  # fp32 on the CPU: the paper's 4 bytes an element are the live cache's too
        assert r["prompt_tokens"] > 5
        assert r["cache_bytes_paper"] == r["cache_bytes_actual"] == r["cache_bytes_measured"] == \
            kv_cache_bytes(dims, 5, 4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert _keys_named(manifest["config"], "window") == [1]  # one window, the method's
    assert _keys_named(manifest["config"], "sinks") == [4]
    method = make_method("sinks-only")
    costs = cost_model_of(method)  # both conventions read the method's own W = 5
    assert paper_cache_bytes(dims, costs, 600) == paper_cache_bytes(dims, "swa", 600, window_total=5)
    assert paper_mixing_flops(dims, costs, 600) == paper_mixing_flops(dims, "swa", 600, window_total=5)
    with pytest.raises(ValueError, match="window=64 given, but the method has window=1"):
        estimate(dims, costs, 600, 4, 64)  # a second window beside the method's is refused


def test_the_warning_still_says_when_the_window_held_every_prompt(model_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="harness.runner"):
        assert main(["run", "--model", str(model_dir), "--method", "swa", "--sinks", "4", "--window", "2048",
                     *TASK, "--output", str(tmp_path / "swa")]) == 0
    assert "sinks + window = 2052 tokens hold every prompt" in caplog.text


# ---------------------------------------------------------------------------------- the trained method


@pytest.fixture(scope="module")
def learned_checkpoint(model_dir, tmp_path_factory) -> Path:
    """Weights of the trained plugin, saved by the method itself (a group's first token weighted e² ≈ 7.4:1)."""
    from transformers import AutoModelForCausalLM

    from baselines import attach

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
    method = make_method("ct-learned", sinks=4, window=64)
    method.logits = torch.tensor([1.0, -1.0])
    folder = tmp_path_factory.mktemp("ct-learned-ckpt")
    with attach(model, method):
        method.save_checkpoint(model, str(folder))
    return folder


def test_trained_method_is_declared_by_its_registration():
    spec = get_spec("ct-learned")
    assert spec.needs_checkpoint and spec.bounded and spec.paper_name == "CT-Learned"
    assert not get_spec("sinks-only").needs_checkpoint and get_spec("sinks-only").bounded
    assert not get_spec("full").bounded
    from harness.style import style_for

    assert (style_for("ct-learned").color, style_for("ct-learned").marker) == ("#56B4E9", "*")
    env = {**os.environ, "AHN_HARNESS_PLUGINS": "tests.plugins.ct_learned,tests.plugins.sinks_only"}
    listed = subprocess.run([sys.executable, "-m", "harness", "list", "methods"], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "ct-learned" in listed and "sinks-only" in listed


def test_trained_method_info_run_with_its_checkpoint_compare_plot_and_table(model_dir, learned_checkpoint,
                                                                            tmp_path, capsys):
    settings = ["--window", "64", "--sinks", "4"]
    assert main(["info", "--model", str(model_dir), "--method", "ct-learned", *settings, "--length", "2k",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "ct-learned" and (doc["sinks"], doc["window"]) == (4, 64) and doc["ct_slots"] > 0
    # trained: refused without its weights, before any are read
    assert main(["run", "--model", str(model_dir), "--method", "ct-learned", *settings, *TASK,
                 "--output", str(tmp_path / "no-ckpt")]) == 2
    assert "needs a trained checkpoint" in capsys.readouterr().err
    runs = {}
    for method, extra in (("swa", []), ("ct-learned", ["--checkpoint", str(learned_checkpoint)])):
        runs[method] = tmp_path / method
        assert main(["run", "--model", str(model_dir), "--method", method, *settings, *extra, *TASK,
                     "--output", str(runs[method])]) == 0
    records = load_run(runs["ct-learned"]).records
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    assert all(r["cache_bytes_measured"] == r["cache_bytes_actual"] for r in records)
    manifest = json.loads((runs["ct-learned"] / "manifest.json").read_text())
    assert manifest["config"]["method"]["method"] == "ct-learned"
    assert "model.safetensors" in json.dumps(manifest["weights"]["ahn_checkpoint"])
    # the weights the run used are the checkpoint's, loaded by the method
    from harness.loading import loaded
    from harness.presets import resolve_model

    preset = resolve_model(str(model_dir), "ct-learned", 4, 64, str(learned_checkpoint))
    with loaded(preset, "cpu") as lo:
        assert torch.equal(lo.method.logits, torch.tensor([1.0, -1.0]))
    bad = tmp_path / "not-mine"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"format": "other"}))
    (bad / "model.safetensors").write_bytes((learned_checkpoint / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="not a ct-learned checkpoint"), loaded(preset.with_overrides(
            ahn_checkpoint=str(bad)), "cpu"):
        pass
    capsys.readouterr()
    assert main(["compare", str(runs["swa"]), str(runs["ct-learned"])]) in (0, 1)
    assert "ct-learned" in capsys.readouterr().out
    assert main(["plot", str(runs["swa"]), str(runs["ct-learned"]), "--output", str(tmp_path / "plots")]) == 0
    assert sorted(p.suffix for p in (tmp_path / "plots").iterdir()) == [".png"] * 3 + [".svg"] * 3
    capsys.readouterr()
    assert main(["table", "--paper"]) == 0
    table = capsys.readouterr().out
    assert "| 3B | CT-Learned | – / – |" in table  # a row of Table 2 (no published numbers, no run given)
    assert table.index("| 3B | AHN-GDN |") < table.index("| 3B | CT-Learned |")


# ------------------------------------------------------------------------ no method name tested elsewhere

#: Where a method's name may be tested: the registry and the methods' own files (the AHN package is one
#: method's). The studies (`studies/`), which compare the methods they name, are outside the product.
OWN_FILES = ("baselines/registry.py", "baselines/methods.py", "baselines/method_costs.py", "ahn/")
PRODUCT = ("harness", "baselines", "tasks", "ahn")


def _literals(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def method_name_tests(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, code) of every test of a method name: `x == "full"`, `x in ("swa", …)`, `x.startswith("ahn")`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        hits: list[str] = []
        if isinstance(node, ast.Compare):
            hits = [s for side in (node.left, *node.comparators) for s in _literals(side) if s.lower() in names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("startswith", "endswith", "removeprefix"):
            hits = [s for a in node.args for s in _literals(a)
                    if len(s) >= 2 and any(n.startswith(s.lower()) for n in names)]
        if hits:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_scan_finds_the_tests_it_forbids():
    names = set(method_names())
    bad = 'a = m == "full"\nb = m.startswith("ahn")\nc = m in ("swa", "x")\nd = m != "ct-max"\n'
    assert [line for line, _ in method_name_tests(bad, names)] == [1, 2, 3, 4]
    fine = 'a = spec.bounded\nb = k in ("sinks", "tokens")\nc = name.startswith("tiny-")\nd = x == "fullx"\n'
    assert method_name_tests(fine, names) == []


def test_no_method_name_is_tested_outside_the_registry_and_the_methods_own_files():
    names = set(method_names())
    offences = []
    for package in PRODUCT:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(OWN_FILES):
                continue
            offences += [f"{rel}:{line}: {code}" for line, code in method_name_tests(path.read_text(), names)]
    assert offences == [], "ask the registry (get_spec(m).bounded, .needs_checkpoint, …), not the name:\n" + \
        "\n".join(offences)
