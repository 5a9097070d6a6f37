"""Small things a new user trips over: the task listing, plot on a job's folder, default output folders, no
empty folder after a failed run, the score's scale said where it is shown, one INFO line per AHN load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from harness.cli import DEFAULT_OUTPUT, default_output, main
from harness.presets import TINY_DEFAULT
from harness.provenance import make_manifest
from harness.store import RunStore


def _run(path: Path, preset: str, scores: list[float]) -> Path:
    with RunStore.create_or_resume(path, make_manifest({"preset": preset}, argv=["t"])) as store:
        for i, s in enumerate(scores):
            store.append({"key": f"synthetic/passkey|1k|{i}", "task": "synthetic/passkey", "level": "1k",
                          "id": str(i), "score": s, "status": "ok", "prompt_tokens": 1000,
                          "cache_bytes_paper": 1000 * (1 + i), "flops_paper": 10**9})
    return path


def test_list_tasks_names_the_tasks_of_every_family(capsys) -> None:
    from tasks.family import families

    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    for name, family in families().items():
        assert f"  {name} " in out
        for task in family.names():
            assert task in out, (name, task)
    assert "factrecall_en" in out and "niah_multikey" in out and "longbook_qa_eng" in out


def test_plot_accepts_a_job_folder_as_load_run_does(tmp_path: Path, capsys) -> None:
    job = tmp_path / "job"
    _run(job / "tiny-full", "tiny-full", [1.0] * 4)
    _run(job / "tiny-swa", "tiny-swa", [1.0, 0.0, 0.0, 1.0])
    assert main(["plot", str(job)]) == 0
    written = sorted(p.name for p in (job / "plots").iterdir())
    assert written == sorted(f"{s}.{e}" for s in ("score_by_length", "cost_vs_length", "score_vs_cost")
                             for e in ("png", "svg"))
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a run folder" in err and len(err.strip().splitlines()) == 1


def test_default_output_follows_the_presets() -> None:
    assert default_output(["tiny-full"]) == DEFAULT_OUTPUT / "tiny-full"
    assert default_output(list(TINY_DEFAULT)) == Path("runs/tiny-default")  # the README's quick start
    assert default_output(list(reversed(TINY_DEFAULT))) == Path("runs/tiny-default")
    two = default_output(["tiny-full", "tiny-swa"])
    assert two == DEFAULT_OUTPUT / "tiny-full+tiny-swa"
    five_a, five_b = default_output(list(TINY_DEFAULT[:5])), default_output(list(TINY_DEFAULT[1:6]))
    assert len({two, five_a, five_b, default_output(list(TINY_DEFAULT))}) == 4  # no two lists share a folder
    assert five_a.name.startswith("tiny-full+4-more-") and len(five_a.name) < 40


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    import harness.runner

    def fail(presets, settings):
        raise ValueError("no weights here")

    monkeypatch.setattr(harness.runner, "run_presets", fail)
    target = tmp_path / "new" / "deeper"
    assert main(["run", "--model", "tiny-full", "--output", str(target), "--no-progress"]) == 2
    assert "no weights here" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # the folders the write probe made are gone again
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["run", "--model", "tiny-full", "--output", str(kept), "--no-progress"]) == 2
    assert kept.is_dir()  # a folder the user had stays


def test_the_score_scale_is_said_where_scores_are_shown(tmp_path: Path) -> None:
    from harness.frame import load_run, to_lm_eval_results
    from harness.summary import format_table, summarize, write_summary

    run = _run(tmp_path / "r", "tiny-full", [1.0, 0.0])
    frame = load_run(run)
    assert frame.attrs["score_scale"] == "0-1" and frame["score"].max() == 1.0
    results = json.loads(next(p for p in to_lm_eval_results(run, tmp_path / "x")
                              if p.name.startswith("results_")).read_text())
    assert {c["score_scale"] for c in results["configs"].values()} == {"0-1"}
    json_path, md_path = write_summary(run)
    assert json.loads(json_path.read_text())["score_scale"] == "x100"
    assert "score (×100)" in format_table(summarize([])) and "×100" in md_path.read_text()


@pytest.mark.filterwarnings("ignore")
def test_an_ahn_load_says_the_ignored_config_keys_once(tmp_path: Path, caplog) -> None:
    import torch

    from ahn.checkpoint import save_ahn_checkpoint
    from baselines import attach, make_method
    from harness.loading import loaded
    from harness.presets import resolve_model
    from tests.tiny_models import save_tiny_model_folder

    model_dir = save_tiny_model_folder(tmp_path / "base")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    method = make_method("ahn-gdn", sinks=4, window=16)
    with attach(model, method):
        torch.manual_seed(0)
        save_ahn_checkpoint(model, tmp_path / "ckpt", "gdn", model.config.to_dict())
    cfg_path = tmp_path / "ckpt" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update({"sliding_window": 16, "use_sliding_window": True})  # training leftovers, as released configs hold
    cfg_path.write_text(json.dumps(cfg))
    preset = resolve_model(str(model_dir), "ahn-gdn", 4, 16, str(tmp_path / "ckpt"))
    with caplog.at_level(logging.INFO):
        with loaded(preset, "cpu", "float32"):
            pass
    said = [r for r in caplog.records if "training-only config keys" in r.getMessage()]
    assert len(said) == 1 and "sliding_window" in said[0].getMessage()


def test_the_embedded_default_still_writes_runs_tiny_default(tmp_path: Path, monkeypatch) -> None:
    """The README's quick start: `python -m harness run` resumes into runs/tiny-default; two presets go elsewhere."""
    import harness.runner

    seen: list[Path] = []

    def record(presets, settings):
        seen.append(settings.output)
        return []

    monkeypatch.setattr(harness.runner, "run_presets", record)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--no-progress"]) == 0
    assert main(["run", "--model", "tiny-full,tiny-swa", "--no-progress"]) == 0
    assert seen == [Path("runs/tiny-default"), Path("runs/tiny-full+tiny-swa")]
    assert not (tmp_path / "runs").exists()  # nothing ran, so nothing was left behind
