"""Task selection strings → samples and per-task settings: the one entry point the harness uses.

Grammar (comma-separated selections): ``family[:name][@level[+level...]]``; ``family/name`` (the
``Sample.task`` form) is accepted too. Examples: ``lveval`` (11 datasets × 5 levels),
``lveval:factrecall_en@128k``, ``lveval@16k+32k``, ``infinitebench:passkey``, ``ahn-paper:lveval``,
``longbench:qmsum``, ``synthetic:passkey@4k+8k`` (synthetic lengths in tokens: ``4k`` = 4096).
Every bad family, name or level raises ``ValueError`` at parse time, naming it and listing the valid values,
so a typo fails before any data is read.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from tasks import ahn_paper, infinitebench, longbench, lveval
from tasks.prompting import NO_TRUNCATION, TaskSettings
from tasks.sample import Sample

FAMILIES: tuple[str, ...] = ("lveval", "infinitebench", "longbench", "ahn-paper", "synthetic")
DEFAULT_SYNTHETIC_N_PER_LENGTH = 20


@dataclass(frozen=True)
class Selection:
    """One parsed selection: a family, one name in it or all (``None``), levels or all (``None``)."""

    family: str
    name: str | None = None
    levels: tuple[str, ...] | None = None

    def __str__(self) -> str:
        s = self.family + (f":{self.name}" if self.name else "")
        return s + ("@" + "+".join(self.levels) if self.levels else "")


def parse_length(label: str) -> int:
    """A synthetic length label as tokens: ``4k`` = 4096, ``1m`` = 1048576, ``3000`` = 3000."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", label)
    if not m:
        raise ValueError(f"bad length {label!r}; use an integer token count or a label like 4k, 128k, 1m")
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if n <= 0:
        raise ValueError(f"bad length {label!r}: must be positive")
    return n


def _synthetic() -> ModuleType:
    """``tasks.synthetic``, imported only when a synthetic task is asked for."""
    try:
        return importlib.import_module("tasks.synthetic")
    except ImportError as exc:  # pragma: no cover - depends on the other package being present
        raise ValueError(f"synthetic tasks are unavailable: cannot import tasks.synthetic ({exc})") from exc


def _synthetic_names() -> tuple[str, ...] | None:
    names = getattr(_synthetic(), "TASKS", None)
    return tuple(names) if names else None


def _family_names(family: str) -> tuple[str, ...]:
    if family == "lveval":
        return lveval.DATASETS
    if family == "infinitebench":
        return infinitebench.TASKS
    if family == "longbench":
        return longbench.TASKS
    if family == "ahn-paper":
        return ahn_paper.NAMES
    return _synthetic_names() or ()


def _check_levels(sel: Selection) -> None:
    if not sel.levels:
        return
    if sel.family == "lveval":
        for lv in sel.levels:
            lveval.check_level(lv)
    elif sel.family == "synthetic":
        for lv in sel.levels:
            parse_length(lv)
    elif sel.family == "ahn-paper":
        only_lveval = sel.name is not None and sel.name.startswith("lveval")
        for lv in sel.levels:
            if lv != ahn_paper.LVEVAL_LEVEL or not only_lveval:
                valid = ahn_paper.LVEVAL_LEVEL if only_lveval else "none (select ahn-paper:lveval for its 128k level)"
                raise ValueError(f"bad level {lv!r} for {sel.family}:{sel.name or '*'}; valid: {valid}")
    else:
        raise ValueError(f"{sel.family} has no levels (got {'+'.join(sel.levels)!r}); drop the '@...' part")


def parse_one(item: str) -> Selection:
    """One selection string (see the module docstring)."""
    text = item.strip()
    if not text:
        raise ValueError("empty task selection")
    body, _, lv = text.partition("@")
    if ":" in body:
        family, _, name = body.partition(":")
    elif "/" in body:
        family, _, name = body.partition("/")
    else:
        family, name = body, ""
    family, name = family.strip(), name.strip()
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; valid: {', '.join(FAMILIES)}")
    levels = tuple(x.strip() for x in re.split(r"[+|]", lv) if x.strip()) if lv else None
    if "@" in text and not levels:
        raise ValueError(f"empty level list in {text!r}")
    sel = Selection(family, name or None, levels)
    if sel.name is not None:
        valid = _family_names(family)
        if valid and sel.name not in valid:
            raise ValueError(f"unknown {family} task {sel.name!r}; valid: {', '.join(valid)}")
    _check_levels(sel)
    return sel


def parse_task_spec(spec: str) -> list[Selection]:
    """``"lveval:factrecall_en@128k,infinitebench:passkey,lveval"`` → a list of :class:`Selection`."""
    return [parse_one(item) for item in spec.split(",") if item.strip()] or _raise_empty(spec)


def _raise_empty(spec: str) -> list[Selection]:
    raise ValueError(f"no task selected in {spec!r}; families: {', '.join(FAMILIES)}")


def _as_selections(selection: Selection | str | Sequence[Selection | str]) -> list[Selection]:
    if isinstance(selection, Selection):
        return [selection]
    if isinstance(selection, str):
        return parse_task_spec(selection)
    out: list[Selection] = []
    for s in selection:
        out.extend(_as_selections(s))
    return out


def _load_one(
    sel: Selection,
    data_dir: str | Path | None,
    limit: int | None,
    tokenizer: Any,
    seed: int,
    prompt_set: str,
) -> list[Sample]:
    names = [sel.name] if sel.name else None
    levels = list(sel.levels) if sel.levels else None
    if sel.family == "lveval":
        return lveval.load(names, levels, data_dir, limit)
    if sel.family == "infinitebench":
        return infinitebench.load(names, data_dir, limit, prompt_set)
    if sel.family == "longbench":
        return longbench.load(names, data_dir, limit)
    if sel.family == "ahn-paper":
        return ahn_paper.load(names, data_dir, limit, levels)
    mod = _synthetic()
    if levels:
        lengths = [parse_length(x) for x in levels]
    else:
        default = getattr(mod, "DEFAULT_LENGTHS", None)
        if not default:
            raise ValueError(f"synthetic:{sel.name or '*'} needs lengths, e.g. synthetic:passkey@4k+8k")
        lengths = [int(x) for x in default]
    n = limit if limit is not None else int(getattr(mod, "DEFAULT_N_PER_LENGTH", DEFAULT_SYNTHETIC_N_PER_LENGTH))
    todo = names or list(_synthetic_names() or ())
    if not todo:
        raise ValueError("synthetic: no task name given and tasks.synthetic lists none (TASKS)")
    out: list[Sample] = []
    for name in todo:
        out.extend(mod.load(name, lengths, n, seed, tokenizer))
    return out


def load_samples(
    selection: Selection | str | Sequence[Selection | str],
    data_dir: str | Path | None = None,
    limit: int | None = None,
    tokenizer: Any = None,
    seed: int = 0,
    prompt_set: str = "open",
) -> list[Sample]:
    """Samples of one or more selections, in selection order, without duplicates (by ``Sample.key``).

    ``limit`` keeps the first N records per task and level (for synthetic tasks: N per length).
    ``tokenizer`` and ``seed`` only matter for synthetic tasks (lengths are counted in its tokens);
    ``prompt_set`` (``open``/``chat``) only for InfiniteBench.
    """
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    seen: set[str] = set()
    out: list[Sample] = []
    for sel in _as_selections(selection):
        for s in _load_one(sel, data_dir, limit, tokenizer, seed, prompt_set):
            if s.key not in seen:
                seen.add(s.key)
                out.append(s)
    return out


def task_settings(task: str | Sample) -> TaskSettings:
    """Default ``(truncation, chat_template, max_new_tokens)`` of a task (``family/name``) or a sample.

    LV-Eval: the official protocol (middle 15,500, no chat template); ``ahn-paper/...``: the paper's;
    InfiniteBench: B4.3 (a sample made with the ``chat`` prompt set gets the chat template). The harness
    may override any of these explicitly; it records what it used.
    """
    sample = task if isinstance(task, Sample) else None
    name = sample.task if sample is not None else str(task)
    family, _, rest = name.partition("/")
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r} in {name!r}; valid: {', '.join(FAMILIES)}")
    if not rest:
        example = next(iter(_family_names(family)), "<name>")
        raise ValueError(f"task {name!r} needs a name: family/name, e.g. {family}/{example}")
    if family == "lveval":
        return lveval.settings(rest)
    if family == "infinitebench":
        prompt_set = sample.extra.get("prompt_set", "open") if sample is not None else "open"
        return infinitebench.settings(rest, prompt_set)
    if family == "longbench":
        return longbench.settings(rest)
    if family == "ahn-paper":
        return ahn_paper.settings(rest)
    mod = _synthetic()
    fn = getattr(mod, "task_settings", None)
    if fn is not None:
        got = fn(rest)
        return got if isinstance(got, TaskSettings) else TaskSettings(*got)
    max_new = sample.max_new_tokens if sample is not None else 16
    return TaskSettings(NO_TRUNCATION, False, max_new)


def data_provenance(samples: Sequence[Sample]) -> dict[str, list[dict[str, Any]]]:
    """Per task, the distinct data sources its samples were read from (``extra["data"]``: local path, or Hub
    repo + requested revision + resolved commit), for the run manifest."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        prov = s.extra.get("data")
        if not prov:
            continue
        entry = {k: v for k, v in prov.items() if k != "member"}
        bucket = out.setdefault(s.task, [])
        if entry not in bucket:
            bucket.append(entry)
    return out
