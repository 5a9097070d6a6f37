"""The speed table: prefill and decode seconds per sample from records, the device from the manifest."""

from __future__ import annotations

import pytest

from harness.provenance import make_manifest
from harness.record import SampleRecord
from harness.speed import device_of, run_device, speed_rows, speed_table
from harness.store import Run, RunStore

H100 = {"gpu_count": 1, "gpu_names": ["NVIDIA H100 80GB HBM3"], "cpu_name": "x"}


def _rec(bucket: str, i: int, prefill: float, decode: float, batch: int, status: str = "ok") -> dict:
    rec = SampleRecord(key=f"t|{bucket}|{i}", task="t", level=bucket, id=str(i), bucket=bucket, prompt_tokens=100 + i,
                       prefill_s=prefill, decode_s=decode, decode_batch=batch, decode_s_per_token=decode / 10,
                       n_generated=10)
    return rec.fail("out of memory") if status != "ok" else rec


def test_rows_are_hand_computed_means_per_bucket():
    records = [_rec("32k", 0, 2.0, 8.0, 4).to_dict(), _rec("32k", 1, 4.0, 8.0, 4).to_dict(),
               _rec("32k", 2, 9.0, 1.0, 1).to_dict(), _rec("128k", 0, 30.0, 2.0, 1).to_dict(),
               _rec("128k", 1, 0.0, 0.0, 1, status="failed").to_dict(), _rec("4k", 0, 1.0, 1.0, 1).to_dict()]
    run = Run(manifest={"label": "swa", "provenance": {"hardware": H100}}, records=records)
    rows = speed_rows([run], ["32k", "128k", "64k"])
    assert [r.bucket for r in rows] == ["32k", "128k"]  # the order asked for; absent buckets left out
    r32, r128 = rows
    assert (r32.n_ok, r32.n_failed, r128.n_ok, r128.n_failed) == (3, 0, 1, 1)
    assert r32.prefill_s == pytest.approx(5.0) and r32.prefill_s_median == pytest.approx(4.0)
    assert r32.decode_s == pytest.approx(17 / 3) and r32.decode_batch == pytest.approx(3.0)
    assert r32.decode_s_per_sample == pytest.approx((2.0 + 2.0 + 1.0) / 3)  # a batch's time shared by its samples
    assert r128.prefill_s == pytest.approx(30.0) and r128.prompt_tokens == pytest.approx(100.0)
    assert r32.method == "swa" and r32.device == "NVIDIA H100 80GB HBM3"


def test_device_names():
    assert device_of({"gpu_count": 2, "gpu_names": ["NVIDIA H200", "NVIDIA H200"]}) == "2x NVIDIA H200"
    assert device_of({"gpu_count": 0, "gpu_names": [], "cpu_name": "AMD EPYC", "cpu_usable": 2}) == \
        "CPU: AMD EPYC (2 cores usable)"
    moved = {"provenance": {"hardware": H100}, "resumes": [{"hardware": {"gpu_count": 1, "gpu_names": ["NVIDIA H200"]}}]}
    assert run_device(moved) == "NVIDIA H100 80GB HBM3 / then NVIDIA H200"


def test_table_reads_run_folders(tmp_path):
    root = tmp_path / "runs"
    for label, prefill in (("full", 3.0), ("swa", 1.5)):
        manifest = make_manifest({"preset": label}, label=label)
        with RunStore.create_or_resume(root / label, manifest) as store:
            store.append(_rec("32k", 0, prefill, 2.0, 1).to_dict())
    (tmp_path / "empty").mkdir()
    text = speed_table([root], ["32k", "128k"])
    lines = text.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| full |") and lines[3].startswith("| swa |")
    assert "| 32k | 1 (0) | 100 | 3.00 | 3.00 | 2.00 | 1.0 | 2.00 | 0.2000 |" in lines[2]
    with pytest.raises(ValueError, match="no run folders"):
        speed_table([tmp_path / "empty"])
