"""Data location: local copies win, offline fails at once with a useful message and no network attempt."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tasks import hub, infinitebench, lveval


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any socket connection attempt is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(hub.ENV_DATA, str(cache))
    return cache


def test_offline_fails_fast_naming_dataset_files_and_remedy(empty_cache: Path, no_network: list) -> None:
    t0 = time.monotonic()
    with pytest.raises(hub.DataUnavailableError) as err:
        lveval.load(["factrecall_en", "cmrc_mixup"], ["16k"])
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "lveval" in msg and "factrecall_en.zip" in msg and "cmrc_mixup.zip" in msg
    assert "--data-dir" in msg and hub.ENV_DATA in msg and "offline" in msg
    assert "Infinigence/LVEval/resolve/" in msg
    assert no_network == []


def test_offline_infinitebench(empty_cache: Path, no_network: list) -> None:
    t0 = time.monotonic()
    with pytest.raises(FileNotFoundError, match=r"passkey\.jsonl"):
        infinitebench.load(["passkey"])
    assert time.monotonic() - t0 < 5 and no_network == []


def test_unreachable_hub_fails_fast(empty_cache: Path, no_network: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    t0 = time.monotonic()
    with pytest.raises(hub.DataUnavailableError, match="unreachable"):
        hub.fetch("infinitebench", ["passkey.jsonl"])
    assert time.monotonic() - t0 < 5
    assert len(no_network) == 1  # one quick probe, no HTTP retries


def test_explicit_data_dir_never_downloads(tmp_path: Path, no_network: list, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(hub.DataUnavailableError, match="not in --data-dir") as err:
        hub.fetch("longbench", ["data.zip"], tmp_path)
    assert str(tmp_path) in str(err.value)
    assert no_network == []


def test_local_copies_in_data_dir_family_subfolder_and_cache(tmp_path: Path, empty_cache: Path) -> None:
    (tmp_path / "infinitebench").mkdir()
    (tmp_path / "infinitebench" / "passkey.jsonl").write_text("{}\n")
    got = hub.fetch("infinitebench", ["passkey.jsonl"], tmp_path)[0]
    assert got.path == tmp_path / "infinitebench" / "passkey.jsonl"
    assert got.provenance() == {"origin": "local", "path": str(got.path)}
    (empty_cache / "infinitebench").mkdir(parents=True)
    (empty_cache / "infinitebench" / "kv_retrieval.jsonl").write_text("{}\n")
    got = hub.fetch("infinitebench", ["kv_retrieval.jsonl"])[0]
    assert got.path == empty_cache / "infinitebench" / "kv_retrieval.jsonl"


def test_cache_root_and_revisions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(hub.ENV_DATA, str(tmp_path))
    assert hub.cache_root() == tmp_path
    monkeypatch.delenv(hub.ENV_DATA)
    assert hub.cache_root() == Path.home() / ".cache" / "ahn-harness"
    assert set(hub.DATASET_REVISIONS) == set(hub.HUB_REPOS) == {"lveval", "infinitebench", "longbench"}
    with pytest.raises(ValueError, match="unknown dataset family 'ruler'"):
        hub.fetch("ruler", ["x"])


def test_hub_cache_provenance_records_commit(tmp_path: Path) -> None:
    p = tmp_path / "hub" / "datasets--x--y" / "snapshots" / ("a" * 40) / "passkey.jsonl"
    assert hub._commit_from_path(p) == "a" * 40
    f = hub.DataFile(p, "infinitebench", "passkey.jsonl", "hub", "x/y", "main", "a" * 40)
    assert f.provenance()["commit"] == "a" * 40 and f.provenance()["revision"] == "main"
