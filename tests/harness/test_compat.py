"""The installed tool runs its own packages and a supported transformers, or says why not (harness.compat)."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness import compat

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_own_packages_resolve_to_the_checkout():
    assert compat.foreign_packages() == {}


def test_a_local_tasks_folder_is_named_instead_of_a_missing_submodule(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("# a user's own package\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness", "list", "tasks"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "ShadowedPackageError" in proc.stderr
    assert str(tmp_path / "tasks" / "__init__.py") in proc.stderr
    assert "ahn-harness" in proc.stderr  # the way out is named
    assert "No module named 'tasks.registry'" not in proc.stderr


def test_foreign_module_of_the_same_name_is_detected(tmp_path, monkeypatch):
    (tmp_path / "baselines.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "baselines", raising=False)
    assert compat.foreign_packages() == {"baselines": (tmp_path / "baselines.py").resolve()}
    with pytest.raises(compat.ShadowedPackageError, match="'baselines' resolves to"):
        compat.check_own_packages()


@pytest.mark.parametrize(("version", "ok"), [("4.57.1", False), ("5.16.2", False), ("5.17.0", True),
                                             ("5.24.0", True), ("5.30.0.dev0", True), ("6.0.0", False)])
def test_transformers_range(version, ok):
    assert compat.transformers_supported(version) is ok
    if ok:
        assert compat.check_transformers(version) == version
    else:
        with pytest.raises(compat.UnsupportedTransformersError, match=f"transformers {version} is not supported"):
            compat.check_transformers(version)


def test_pyproject_states_the_same_transformers_range():
    deps = PYPROJECT["project"]["dependencies"]
    assert f"transformers{compat.TRANSFORMERS_SPEC}" in deps


def test_console_script_is_declared():
    assert PYPROJECT["project"]["scripts"]["ahn-harness"] == "harness.cli:main"


def test_every_data_file_of_the_packages_goes_into_the_wheel():
    """Each non-Python file under the packaged folders is matched by a package-data pattern (a chat template
    left out of the wheel broke `--chat-template on` from an installed copy)."""
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["*"]
    roots = [p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
    tracked = subprocess.run(["git", "ls-files", *roots], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    files = [Path(f) for f in tracked.stdout.splitlines() if not f.endswith(".py")]
    assert files
    missing = [str(f) for f in files if not any(fnmatch.fnmatch(f.name, pat) for pat in patterns)]
    assert missing == []
