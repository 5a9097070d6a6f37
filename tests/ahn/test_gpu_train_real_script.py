"""bench/gpu_train_real.py at its toy shape on the CPU: the speed table, training, checkpoints and a resume."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_train_real", REPO / "bench" / "gpu_train_real.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_measures_trains_saves_and_resumes(tmp_path):
    script = _script()
    out = tmp_path / "out"
    rc = script.main(["--device", "cpu", "--tiny", "--cells", "gdn", "--steps", "5", "--max-steps", "3",
                      "--bench", "old,new",
                      "--bench-steps", "2", "--bench-warmup", "1", "--out", str(out)])
    assert rc == 0
    bench = json.loads((out / "bench.json").read_text())
    for name in ("old", "new"):
        r = bench["settings"][name]
        assert len(r["times"]) == 2 and r["tokens_per_s"] > 0 and 0 < r["mfu"]
        assert r["tokens_per_s"] == pytest.approx(r["seq_len"] * r["micro_batch"] / r["step_s_median"])
    assert bench["settings"]["old"]["gradient_checkpointing"] and not bench["settings"]["new"]["gradient_checkpointing"]
    assert "| new |" in (out / "bench.md").read_text()

    cell = out / "gdn"
    rows = [json.loads(line) for line in (cell / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (cell / "loss_curve.png").stat().st_size > 1000
    manifest = json.loads((cell / "data_manifest.json").read_text())
    assert manifest["files_used"] and manifest["sequences"] * manifest["seq_len"] == manifest["tokens"]

    # the released-format weights load strictly onto the same base shape
    from transformers import AutoModelForCausalLM, Qwen2Config

    from ahn.checkpoint import load_ahn_state_dict
    from baselines import attach, make_method

    model = AutoModelForCausalLM.from_config(Qwen2Config(**script.TINY))
    method = make_method("ahn", cell="gdn", sinks=2, window=62)
    with attach(model, method):
        load_ahn_state_dict(cell, model, strict=True)
        assert any(float(b.fn.o_proj.weight.detach().abs().sum()) > 0 for b in method.blocks)

    # a second command continues the same schedule (5 updates, not --steps 9) from the first one's checkpoint
    again = tmp_path / "again"
    assert script.main(["--device", "cpu", "--tiny", "--cells", "gdn", "--steps", "9", "--bench", "none",
                        "--resume", str(out), "--out", str(again)]) == 0
    rows2 = [json.loads(line) for line in (again / "gdn" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows2] == [1, 2, 3, 4, 5]
    assert rows2[:3] == rows[:3]  # the first command's log carried over, then appended
    assert json.loads((again / "gdn" / "train_summary.json").read_text())["complete"]


def test_bad_arguments_are_named(capsys):
    script = _script()
    with pytest.raises(SystemExit):
        script.main(["--tiny", "--cells", "gdm"])
    assert "unknown cell(s) or setting(s) ['gdm']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--base", "/nonexistent"])
    assert "not a model folder" in capsys.readouterr().err


def test_a_cell_whose_kernels_fail_is_trained_again_through_the_reference(tmp_path, monkeypatch):
    import ahn.train.loop as loop

    script = _script()
    real_train, seen = loop.train, []

    def flaky(cfg, **kw):
        seen.append(cfg.backend)
        if len(seen) == 1:
            raise RuntimeError("a kernel failed to build\nsecond line")
        return real_train(cfg, **kw)

    monkeypatch.setattr(loop, "train", flaky)
    out = tmp_path / "out"
    assert script.main(["--device", "cpu", "--tiny", "--cells", "dn", "--steps", "2", "--max-steps", "1",
                        "--bench", "none", "--out", str(out)]) == 0
    assert seen == ["auto", "reference"]
    summary = json.loads((out / "dn" / "run_summary.json").read_text())
    assert summary["fell_back_from"] == "RuntimeError: a kernel failed to build"
    assert summary["steps_done"] == 1 and (out / "dn" / "model.safetensors").is_file()
    assert script.EXTRA == []  # the fallback's override does not leak into the next cell

    seen.clear()
    with pytest.raises(RuntimeError, match="kernel failed"):
        script.main(["--device", "cpu", "--tiny", "--cells", "dn", "--steps", "2", "--max-steps", "1",
                     "--bench", "none", "--no-fallback", "--out", str(tmp_path / "strict")])
    assert seen == ["auto"]
