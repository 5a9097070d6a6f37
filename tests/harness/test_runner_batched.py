"""`harness run --decode static --batch-size B` gives the per-sample records of the eager one-at-a-time run.

On the CPU in fp32 the static step computes the eager step's function with other operation orders, so greedy
ids are equal unless two logits tie within fp32 rounding; the trained tiny presets answer with clear margins.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

VOLATILE = {"prefill_s", "decode_s", "decode_s_per_token", "wall_s", "peak_mem_bytes", "decode_batch"}


def _records(folder: Path) -> dict[str, dict]:
    lines = (folder / "samples.jsonl").read_text().splitlines()
    return {r["key"]: r for r in map(json.loads, lines)}


@pytest.mark.parametrize("preset", ["tiny-ahn-gdn", "tiny-full"])
def test_batched_static_decode_equals_eager_records(tmp_path, preset):
    common = ["run", "--model", preset, "--tasks", "synthetic:passkey@512+1k,synthetic:number_string@1k",
              "--limit", "3", "--no-progress"]
    assert main([*common, "--output", str(tmp_path / "eager"), "--decode", "eager"]) == 0
    assert main([*common, "--output", str(tmp_path / "static"), "--decode", "static", "--batch-size", "4"]) == 0
    eager, static = _records(tmp_path / "eager"), _records(tmp_path / "static")
    assert eager.keys() == static.keys() and len(eager) == 9
    for key, e in eager.items():
        s = static[key]
        assert {k: v for k, v in s.items() if k not in VOLATILE} == {k: v for k, v in e.items() if k not in VOLATILE}
    assert {r["decode_batch"] for r in static.values()} == {4, 1}  # 9 samples: batches of 4, 4 and 1
    assert any(r["score"] == 1.0 for r in eager.values())  # the presets really answer


def test_static_decode_of_a_method_without_layout_is_refused(tmp_path, capsys):
    code = main(["run", "--model", "tiny-ct-max", "--tasks", "synthetic:passkey@512", "--limit", "1",
                 "--no-progress", "--output", str(tmp_path / "ct"), "--decode", "static"])
    assert code == 2
    assert "no static decode layout" in capsys.readouterr().err


def test_the_next_group_is_prepared_while_the_current_one_runs():
    import threading

    from harness.runner import _prepared_groups

    started = {i: threading.Event() for i in range(3)}

    def prepare(group):
        started[group[0]].set()
        return [f"prepared {x}" for x in group]

    seen = []
    for group, prepared in _prepared_groups([[0], [1], [2]], prepare):
        assert prepared == [f"prepared {group[0]}"]
        if group[0] < 2:  # the worker has started on the next group while this one is held
            assert started[group[0] + 1].wait(timeout=30)
        seen.append(group[0])
    assert seen == [0, 1, 2]
    assert list(_prepared_groups([], prepare)) == []


def test_a_failed_preparation_is_raised_at_its_groups_turn():
    from harness.runner import _prepared_groups

    def prepare(group):
        if group == ["bad"]:
            raise ValueError("no such sample")
        return group

    got = _prepared_groups([["good"], ["bad"]], prepare)
    assert next(got) == (["good"], ["good"])
    with pytest.raises(ValueError, match="no such sample"):
        next(got)


def test_a_batch_out_of_memory_runs_its_samples_alone_without_preparing_them_again(tmp_path, monkeypatch):
    import torch

    import harness.runner

    prepared, real = [], harness.runner._prepare_record

    def counted(lo, sample, *args):
        prepared.append(sample.key)
        return real(lo, sample, *args)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")

    monkeypatch.setattr(harness.runner, "_prepare_record", counted)
    monkeypatch.setattr(harness.runner, "generate_many", out_of_memory)
    out = tmp_path / "run"
    assert main(["run", "--model", "tiny-swa", "--tasks", "synthetic:passkey@512", "--limit", "3",
                 "--max-new-tokens", "3", "--no-progress", "--decode", "static", "--batch-size", "2",
                 "--output", str(out)]) == 0
    records = _records(out)
    assert len(records) == 3 and all(r["status"] == "ok" for r in records.values())
    assert sorted(prepared) == sorted(records)  # each prompt prepared once, batched or alone
    assert {r["decode_batch"] for r in records.values()} == {1}  # decoded alone, by the eager engine
