"""Terminal output: logging through one handler, progress bars by tqdm's TTY rule, --quiet (harness.console)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import console

REPO = Path(__file__).resolve().parents[2]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_follow_the_terminal_unless_asked():
    assert console.progress_enabled(None, stream=io.StringIO()) is False
    assert console.progress_enabled(None, stream=_Tty()) is True
    assert console.progress_enabled(True, stream=io.StringIO()) is True
    assert console.progress_enabled(False, stream=_Tty()) is False
    assert console.progress_enabled(True, console.QUIET, stream=_Tty()) is False
    assert console.tqdm_disable(None) is None and console.tqdm_disable(True) is False


def test_quiet_and_verbose_contradict():
    with pytest.raises(ValueError, match="--quiet and --verbose"):
        console.verbosity_of(True, True)


def test_levels_route_project_messages(monkeypatch):
    from transformers.utils import logging as hf_logging  # loaded first: configure then calls its switches

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "warning")
    stream = io.StringIO()
    log = logging.getLogger("harness.some_module")
    try:
        console.configure(console.NORMAL, progress=False, stream=stream)
        log.info("shown at the default level")
        log.debug("hidden at the default level")
        console.configure(console.QUIET, progress=None, stream=stream)  # reconfiguring replaces the handler
        log.warning("hidden under --quiet")
        log.error("errors still shown")
    finally:
        console.configure(console.NORMAL, progress=None, stream=io.StringIO())
        for name in console.PACKAGES:
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert stream.getvalue().splitlines() == ["shown at the default level", "errors still shown"]
    assert not hf_logging.is_progress_bar_enabled()
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    hf_logging.enable_progress_bar()
    hf_logging.set_verbosity_warning()


def test_a_run_into_a_log_file_has_no_carriage_return_and_quiet_prints_only_paths(tmp_path):
    """A non-TTY `harness run` of two tiny presets: no carriage return (no bar, transformers' included);
    information on stderr; with --quiet, stdout holds just the results paths and stderr nothing."""
    if not (REPO / "leaderboards" / "tiny" / "base" / "config.json").exists():
        pytest.skip("the tiny world is not committed in this checkout")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    cmd = [sys.executable, "-m", "harness", "run", "--model", "tiny-full,tiny-swa", "--tasks",
           "synthetic:passkey@512", "--limit", "1", "--output", str(tmp_path / "out")]
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=600)
    assert first.returncode == 0, first.stderr.decode()
    assert b"\r" not in first.stdout + first.stderr
    assert b"tiny-full: 1 sample(s) to run" in first.stderr
    quiet = subprocess.run([*cmd, "--quiet"], cwd=REPO, env=env, capture_output=True, timeout=600)
    assert quiet.returncode == 0, quiet.stderr.decode()
    assert quiet.stderr == b""
    lines = quiet.stdout.decode().splitlines()
    paths = [line.split()[-1] if line.startswith("results:") else line.split()[0] for line in lines]
    assert paths and all(Path(p).exists() for p in paths), lines
