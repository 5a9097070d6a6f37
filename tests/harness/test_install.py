"""Installing like a field tool: the dependency list, `--version`, provenance from the installed package's
metadata (PEP 610) rather than from whatever repository it sits in, and the CPU thread policy."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness import threads, version
from harness.cli import main

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_datasets_is_a_training_extra_and_seaborn_is_gone():
    deps = " ".join(PYPROJECT["dependencies"])
    assert "datasets" not in deps and "seaborn" not in deps
    assert any(d.startswith("datasets") for d in PYPROJECT["optional-dependencies"]["train"])
    users = sorted(str(p.relative_to(REPO)) for room in ("ahn", "baselines", "harness", "tasks")
                   for p in (REPO / room).rglob("*.py") if {"datasets", "seaborn"} & _imports(p))
    assert users == ["ahn/train/data.py"]  # the training recipe only, and it imports it lazily
    top = {n.split(".")[0] for n in _top_level_imports(REPO / "ahn/train/data.py")}
    assert "datasets" not in top


def _top_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_training_without_datasets_names_the_extra(monkeypatch):
    from ahn.train.data import DataError, HubChatSource

    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DataError, match=re.escape("pip install 'ahn-harness[train]'")):
        HubChatSource._load("some/chat-dataset", "train")


def test_plots_draw_without_seaborn(monkeypatch, tmp_path):
    from harness.plots import plot_runs

    monkeypatch.setitem(sys.modules, "seaborn", None)
    runs = sorted(p for p in (REPO / "leaderboards/tiny/default-run").iterdir() if (p / "manifest.json").is_file())
    files = plot_runs(runs[:2], tmp_path)
    assert files and all(Path(f).stat().st_size > 0 for f in files)


def test_version_names_the_pyproject_version_and_the_checkout(capsys):
    assert main(["--version"]) == 0
    line = capsys.readouterr().out.strip()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert line.startswith(f"ahn-harness {PYPROJECT['version']} (git {head[:12]}")


class _Dist:
    def __init__(self, direct_url: dict | None, ver: str = "9.9.9") -> None:
        self._text, self.version = (json.dumps(direct_url) if direct_url else None), ver

    def read_text(self, name: str) -> str | None:
        return self._text if name == "direct_url.json" else None


@pytest.fixture
def installed_in_user_repo(tmp_path, monkeypatch):
    """The package's code inside site-packages of a venv inside the user's own git repository."""
    user = tmp_path / "user-project"
    site = user / ".venv/lib/python3.11/site-packages"
    site.mkdir(parents=True)
    git = ["git", "-c", "user.email=u@example.org", "-c", "user.name=u"]
    subprocess.run([*git, "init", "-q"], cwd=user, check=True)
    (user / "x.txt").write_text("x")
    subprocess.run([*git, "add", "x.txt"], cwd=user, check=True)
    subprocess.run([*git, "commit", "-qm", "user commit"], cwd=user, check=True)
    users_head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=user, capture_output=True, text=True).stdout.strip()
    monkeypatch.setattr(version, "CODE_ROOT", site)
    return users_head


def test_installed_from_git_records_the_vcs_commit_not_the_users(installed_in_user_repo, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setattr(version, "_distribution", lambda: _Dist(
        {"url": "https://example.org/ahn-harness.git", "vcs_info": {"vcs": "git", "commit_id": commit}}))
    rev = version.code_revision()
    assert rev["source"] == "vcs" and rev["revision"] == commit and rev["version"] == "9.9.9"
    assert installed_in_user_repo not in json.dumps(rev)
    from harness.provenance import collect_provenance

    assert collect_provenance(["x"])["git"]["revision"] == commit
    assert version.version_line() == f"ahn-harness 9.9.9 (installed from https://example.org/ahn-harness.git at {commit[:12]})"


def test_installed_from_an_index_or_folder_records_the_version(installed_in_user_repo, monkeypatch):
    for doc in (None, {"url": "file:///somewhere/src", "dir_info": {}}):
        monkeypatch.setattr(version, "_distribution", lambda doc=doc: _Dist(doc))
        rev = version.code_revision()
        assert rev["source"] == "package" and rev["revision"] is None and rev["version"] == "9.9.9"
        assert installed_in_user_repo not in json.dumps(rev)


def test_editable_install_reads_its_source_checkout(installed_in_user_repo, monkeypatch):
    monkeypatch.setattr(version, "_distribution", lambda: _Dist({"url": f"file://{REPO}", "dir_info": {"editable": True}}))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    rev = version.code_revision()
    assert rev["source"] == "editable" and rev["revision"] == head


def test_thread_policy_order_and_errors(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = threads.usable_cores()
    import os

    assert 1 <= cores <= len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 5.0, 0.0, 0.0))  # every core busy: one thread
    auto = threads.decide()
    assert auto.threads == 1 and auto.source == "free cores"
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # idle: every usable core
    assert threads.decide().threads == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert (threads.decide().threads, threads.decide().source) == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv(threads.ENV, "2")
    assert (threads.decide().threads, threads.decide().source) == (2, threads.ENV)
    assert (threads.decide(5).threads, threads.decide(5).source) == (5, "--threads")
    monkeypatch.setenv(threads.ENV, "lots")
    with pytest.raises(ValueError, match="AHN_HARNESS_THREADS='lots'"):
        threads.decide()
    with pytest.raises(ValueError, match="--threads 0"):
        threads.decide(0)


def test_thread_policy_is_applied_and_recorded(monkeypatch):
    import torch

    from harness.provenance import collect_provenance

    before = torch.get_num_threads()
    try:
        policy = threads.apply(1)
        assert torch.get_num_threads() == 1 == policy.threads
        recorded = collect_provenance(["x"])["threads"]
        assert recorded["threads"] == 1 and recorded["source"] == "--threads" and recorded["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)
        threads._APPLIED.clear()


def test_bad_threads_is_one_error_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(threads.ENV, "-1")
    assert main(["run", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "AHN_HARNESS_THREADS='-1'" in err and not (tmp_path / "o").exists()
