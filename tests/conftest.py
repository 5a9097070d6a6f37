"""Test-wide settings: never touch a hub, find the shared fixtures when they exist."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# methods registered from their own files (docs/ADDING_A_METHOD.md): the shared method tests cover them
import tests.plugins.ct_last  # noqa: F401
import tests.plugins.ct_learned  # noqa: F401  (a trained one: weights, a checkpoint format, a paper row)
import tests.plugins.sinks_only  # noqa: F401  (settings of its own: no window, 4 sinks)

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
# AHN_HARNESS_FIXTURES (absolute, or relative to the repository root) points elsewhere on a machine without
# ../shared, e.g. fixtures carried to a GPU machine under an ignored folder
SHARED_FIXTURES = REPO_ROOT / (os.environ.get("AHN_HARNESS_FIXTURES") or "../shared/fixtures")


@pytest.fixture
def monkeypatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """pytest's own, whose setenv / delenv also drop the fast-path switches the process keeps
    (`baselines.fast_paths.current`), so the next read sees the changed environment as a new command would."""
    from baselines import fast_paths

    def then_reset(change):
        def changed(*args, **kwargs):
            change(*args, **kwargs)
            fast_paths.reset()

        return changed

    monkeypatch.setenv = then_reset(monkeypatch.setenv)
    monkeypatch.delenv = then_reset(monkeypatch.delenv)
    yield monkeypatch
    fast_paths.reset()  # before pytest undoes the changes; the next test's first read sees them undone


@pytest.fixture(autouse=True)
def _fresh_fast_paths() -> Iterator[None]:
    """Every test reads the fast-path switches from the environment it runs in."""
    from baselines import fast_paths

    fast_paths.reset()
    yield
    fast_paths.reset()


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The public data in ../shared/fixtures; tests that need it skip on a user's fresh clone."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"{SHARED_FIXTURES} is absent (a user's fresh clone has no ../shared/fixtures; "
                    "AHN_HARNESS_FIXTURES may point elsewhere)")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def lm_eval_builtin_tasks_indexed_once() -> Iterator[None]:
    """lm-eval indexes its ~14,700 built-in task YAML files on every TaskManager (~7 s on one core): in-process
    lm-eval tests read that part of the index from the first build, copied; other task folders (a test's own) are
    indexed afresh, later folders overriding earlier ones as lm-eval's own build does. Nothing changes where
    lm-eval has no `TaskIndex.build` of this form."""
    import copy
    import inspect

    try:
        import lm_eval.tasks
        from lm_eval.tasks._index import TaskIndex
    except ImportError:
        yield
        return
    original = TaskIndex.build
    if list(inspect.signature(original).parameters) != ["paths", "resolve_includes"]:
        yield
        return
    builtin = Path(lm_eval.tasks.__file__).resolve().parent
    built: dict[bool, dict] = {}

    def build(paths, *, resolve_includes=True):
        index: dict = {}
        for root in paths:
            if Path(root).resolve() == builtin:
                if resolve_includes not in built:
                    built[resolve_includes] = original([root], resolve_includes=resolve_includes)
                part = copy.deepcopy(built[resolve_includes])
            else:
                part = original([root], resolve_includes=resolve_includes)
            index.update(part)
        return index

    patch = pytest.MonkeyPatch()
    patch.setattr(TaskIndex, "build", staticmethod(build))
    yield
    patch.undo()
