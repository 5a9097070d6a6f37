"""A real user's path to weights and data: one error listing every missing piece before any weights load,
`harness download --dry-run` with pinned revisions, a preset's base read from a local folder under the preset's
name, and messages that name the current `hf` CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cli import main

PINNED = re.compile(r"@ [0-9a-f]{40}\b")


@pytest.fixture
def nothing_here(monkeypatch, tmp_path):
    """Offline, with an empty Hugging Face cache and an empty harness data cache."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AHN_HARNESS_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def test_offline_with_nothing_present_one_error_names_every_piece(nothing_here, monkeypatch, capsys):
    import harness.runner

    def no_weights(*a, **k):
        raise AssertionError("the run started before the missing pieces were reported")

    monkeypatch.setattr(harness.runner, "run_presets", no_weights)
    out = nothing_here / "run"
    rc = main(["run", "--model", "ahn-gdn-3b", "--tasks", "lveval:factrecall_en,ahn-paper:longbook_qa_eng",
               "--data-dir", str(nothing_here / "nope"), "--output", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "5 piece(s)" in err
    for piece in ("base model Qwen/Qwen2.5-3B-Instruct (revision aa8e7253",
                  "AHN checkpoint ByteDance-Seed/AHN-GDN-for-Qwen-2.5-Instruct-3B",
                  f"--data-dir {nothing_here / 'nope'}: no such folder", "factrecall_en.zip",
                  "longbook_qa_eng.jsonl", "python -m harness download --model ahn-gdn-3b"):
        assert piece in err, piece
    assert not out.exists()  # no folder left behind


def test_missing_local_folders_are_listed_together(nothing_here, capsys):
    rc = main(["run", "--model", str(nothing_here / "m1"), "--method", "ahn-gdn",
               "--ahn-checkpoint", str(nothing_here / "ckpt"), "--tasks", "synthetic:passkey@512",
               "--output", str(nothing_here / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "2 piece(s)" in err
    assert f"base model folder {nothing_here / 'm1'}: no such folder" in err
    assert f"AHN checkpoint folder {nothing_here / 'ckpt'}: no such folder" in err


def test_download_dry_run_lists_pieces_with_revisions(nothing_here, capsys):
    assert main(["download", "--model", "ahn-gdn-3b,qwen2.5-3b", "--tasks", "ahn-paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  ")]
    from tasks import ahn_paper, lveval

    # one base model (shared by both presets), one checkpoint, 11 LV-Eval zips, 2 InfiniteBench files, LongBench
    assert len(lines) == 1 + 1 + len(lveval.DATASETS) + len(ahn_paper.IB_TASKS) + 1
    base = next(ln for ln in lines if ln.startswith("model"))
    assert "Qwen/Qwen2.5-3B-Instruct @ aa8e72537993ba99e69dfaafa59ed015b17504d1" in base
    # the size of bf16 weights from the parameter count: Qwen2.5-3B-Instruct has 3.09 B parameters
    assert "6.2 GB est., bf16" in base
    assert PINNED.search(next(ln for ln in lines if "zai-org/LongBench" in ln))
    assert "not pinned" in out and "Infinigence/LVEval" in out.split("not pinned")[1]
    assert not (nothing_here / "hf").exists() and not (nothing_here / "data").exists()  # nothing fetched


def test_download_refuses_offline_and_bad_names(nothing_here, capsys):
    assert main(["download", "--model", "ahn-gdn-3b"]) == 2
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert main(["download", "--model", "ahn-gdn-3x", "--dry-run"]) == 2
    assert "unknown preset 'ahn-gdn-3x'" in capsys.readouterr().err
    assert main(["download"]) == 2


def test_messages_name_the_hf_cli(nothing_here):
    from harness.loading import ModelUnavailableError, locate

    with pytest.raises(ModelUnavailableError) as info:
        locate("Qwen/Qwen2.5-7B-Instruct")
    assert "`hf download Qwen/Qwen2.5-7B-Instruct --revision a09a3545" in str(info.value)
    assert "huggingface-cli" not in str(info.value)
    for module in ("harness/loading.py", "ahn/checkpoint.py", "ahn/train/data.py", "tasks/hub.py"):
        assert "huggingface-cli" not in (Path(__file__).resolve().parents[2] / module).read_text()


def test_base_path_keeps_the_paper_preset(tmp_path):
    """A paper preset's base read from a local folder: the run keeps the preset (name, base, paper row), so
    `table --paper` takes it."""
    from harness.paper_results import collect_paper_results
    from harness.store import load_run
    from tests.tiny_models import save_tiny_model_folder

    base = save_tiny_model_folder(tmp_path / "local-qwen")
    out = tmp_path / "run"
    assert main(["run", "--model", "qwen2.5-3b-swa", "--base-path", str(base), "--tasks", "synthetic:passkey@512",
                 "--limit", "1", "--max-new-tokens", "2", "--output", str(out), "--no-progress", "-q"]) == 0
    preset = load_run(out).manifest["config"]["preset"]
    assert preset["name"] == "qwen2.5-3b-swa" and preset["model"] == str(base)
    assert preset["base"] == "Qwen2.5-3B-Instruct"
    assert load_run(out).manifest["config"]["method"]["window"] == 32640  # the method carries its settings
    assert "Qwen2.5-3B-Instruct" in collect_paper_results([out])
    manifest = json.loads((out / "manifest.json").read_text())
    assert str(base) in json.dumps(manifest.get("weights", manifest))


def test_base_path_needs_a_preset(tmp_path, capsys):
    assert main(["run", "--model", str(tmp_path), "--base-path", str(tmp_path), "--tasks", "synthetic:passkey@512",
                 "--output", str(tmp_path / "o")]) == 2
    assert "--base-path" in capsys.readouterr().err
