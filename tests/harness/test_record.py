"""The per-sample record is defined once (harness/record.py): the docs' table, failed records, committed runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.record import SampleRecord, field_names, field_table

REPO = Path(__file__).resolve().parents[2]


def test_docs_field_table_is_the_dataclass():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    start, end = "<!-- record-fields: generated from harness/record.py -->\n", "\n<!-- /record-fields -->"
    assert start in text and end in text, "docs/ARCHITECTURE.md lost its generated record table"
    table = text.split(start, 1)[1].split(end, 1)[0]
    assert table == field_table(), "regenerate the table: python -c 'from harness.record import field_table; ...'"
    documented = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert documented == list(field_names())


def test_committed_runs_are_records_of_this_schema():
    runs = sorted((REPO / "leaderboards" / "tiny" / "default-run").glob("tiny-*/samples.jsonl"))
    assert runs, "the committed default run is missing"
    for path in runs:
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = SampleRecord.from_dict(json.loads(line))
            assert rec.key and rec.status in ("ok", "failed")
    with pytest.raises(ValueError, match="unknown sample-record field.*scroe"):
        SampleRecord.from_dict({"key": "a", "scroe": 1.0})


def test_a_failed_sample_carries_every_key(tmp_path, monkeypatch):
    """The runner's failure path (out of memory during generation) writes the same keys as a success."""
    import harness.runner
    from harness.cli import main
    from harness.store import load_run
    from tasks.byte_tokenizer import save_byte_tokenizer
    from tests.tiny_models import tiny_model

    model_dir = tmp_path / "model"
    model = tiny_model("qwen2", vocab=259)
    model.generation_config.eos_token_id = 258
    model.save_pretrained(model_dir)
    save_byte_tokenizer(model_dir)
    real = harness.runner.generate
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(harness.runner, "generate", flaky)
    out = tmp_path / "run"
    assert main(["run", "--model", str(model_dir), "--method", "swa", "--window", "64", "--sinks", "4",
                 "--tasks", "synthetic:passkey@512", "--limit", "3", "--max-new-tokens", "3",
                 "--output", str(out), "--no-progress"]) == 0
    records = load_run(out).records
    assert [r["status"] for r in records].count("failed") == 1
    for r in records:
        assert list(r) == list(field_names()), r["status"]
    failed = next(r for r in records if r["status"] == "failed")
    assert failed["error"].startswith("out of memory") and failed["score"] is None and failed["prediction"] is None
    assert failed["cache_bytes_actual"] is not None and failed["wall_s"] is not None
