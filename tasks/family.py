"""A benchmark family as one object, and the registry that holds every family.

A family says, in one place, which task names it has, which levels it accepts, how its samples are loaded, which
protocol (truncation, chat template, generation length) each task follows and how each task is scored. The
harness reaches families only through this registry (`tasks/registry.py` parses selections and loads; the
scoring registry scores), so a new family is one file and one `register_family(...)` line
(`docs/ADDING_A_BENCHMARK.md`). The built-in families are in `tasks/families.py`. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.prompting import TaskSettings
from tasks.sample import Sample

#: ``scorer(prediction, answers, extra) -> float | ScoreResult``; may raise, the scoring entry point catches it.
Scorer = Callable[[Any, Any, dict[str, Any]], Any]


@dataclass(frozen=True)
class TaskInfo:
    """What scores a task and how, for listings and reports."""

    name: str
    metric: str
    language: str
    scorer: Scorer
    binary: bool | None = None  # every score is 0 or 1 (a yes/no verdict); None: not declared (reports look)

    @property
    def family(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass(frozen=True)
class LoadRequest:
    """What a selection asks of a family's loader: names and levels (None = all) and the run's settings."""

    names: tuple[str, ...] | None = None
    levels: tuple[str, ...] | None = None
    data_dir: str | Path | None = None
    limit: int | None = None  # the first N records per task and level
    tokenizer: Any = None  # for families that build prompts to a token length (synthetic)
    seed: int = 0
    prompt_set: str = "open"  # InfiniteBench's prompt set


def read_jsonl(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The first `limit` JSON objects of a JSON-lines file (blank lines skipped); a bad line names its number
    (``tasks.jsonl``)."""
    from tasks.jsonl import read_objects

    return read_objects(path, limit)


def no_levels(family: str) -> Callable[[str | None, tuple[str, ...]], None]:
    """The level check of a family without levels: any level is an error."""

    def check(name: str | None, levels: tuple[str, ...]) -> None:
        raise ValueError(f"{family} has no levels (got {'+'.join(levels)!r}); drop the '@...' part")

    return check


@dataclass(frozen=True)
class BenchmarkFamily:
    """One benchmark family: names, levels, loading, per-task protocol and scorers."""

    name: str  # the selection prefix and the first part of every task name ("lveval" -> "lveval/<dataset>")
    names: Callable[[], tuple[str, ...]]  # selectable names after "family:"; empty = any name is passed on
    load: Callable[[LoadRequest], list[Sample]]
    settings: Callable[[str, Sample | None], TaskSettings]  # protocol of "family/<rest>" (a sample when known)
    tasks: Callable[[], Mapping[str, TaskInfo]]  # every scorable task of the family, by full name
    check_levels: Callable[[str | None, tuple[str, ...]], None] = field(default=None)  # type: ignore[assignment]
    aliases: Callable[[], Mapping[str, str]] = field(default=lambda: {})  # other names -> a task of `tasks`
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or ":" in self.name or "@" in self.name:
            raise ValueError(f"a family name is a non-empty word without '/', ':' or '@', got {self.name!r}")
        if self.check_levels is None:
            object.__setattr__(self, "check_levels", no_levels(self.name))


#: Modules whose import registers the built-in families (loaded on first use, like the method registry's targets).
BUILTIN_MODULES: tuple[str, ...] = ("tasks.families",)
_FAMILIES: dict[str, BenchmarkFamily] = {}
_builtins_loaded = False
_version = 0  # bumped by every registration, so tables derived from the families can tell they are stale


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def register_family(family: BenchmarkFamily) -> BenchmarkFamily:
    """Add (or replace) a family; its tasks become selectable and scorable at once."""
    global _version
    _load_builtins()  # the built-in families come first, whoever registers first
    if not isinstance(family, BenchmarkFamily):
        raise TypeError(f"register_family takes a BenchmarkFamily, got {type(family).__name__}")
    _FAMILIES[family.name] = family
    _version += 1
    return family


def registry_version() -> int:
    return _version


def families() -> dict[str, BenchmarkFamily]:
    """Every registered family by name, in registration order (the built-in ones first)."""
    _load_builtins()
    return dict(_FAMILIES)


def get_family(name: str) -> BenchmarkFamily:
    known = families()
    if name not in known:
        raise ValueError(f"unknown task family {name!r}; valid: {', '.join(known)}")
    return known[name]
