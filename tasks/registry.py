"""Task selection strings → samples and per-task settings: the one entry point the harness uses.

Grammar (comma-separated selections): ``family[:name][@level[+level...]]``; ``family/name`` (the
``Sample.task`` form) is accepted too. Examples: ``lveval`` (11 datasets × 5 levels),
``lveval:factrecall_en@128k``, ``lveval@16k+32k``, ``infinitebench:passkey``, ``ahn-paper:lveval``,
``longbench:qmsum``, ``synthetic:passkey@4k+8k`` (synthetic lengths in tokens: ``4k`` = 4096).
Every bad family, name or level raises ``ValueError`` at parse time, naming it and listing the valid values,
so a typo fails before any data is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.families import DEFAULT_SYNTHETIC_N_PER_LENGTH, parse_length
from tasks.family import BenchmarkFamily, LoadRequest, families, get_family
from tasks.prompting import TaskSettings
from tasks.sample import Sample

__all__ = ["DEFAULT_SYNTHETIC_N_PER_LENGTH", "Selection", "data_provenance", "load_samples",
           "parse_length", "parse_one", "parse_task_spec", "task_settings"]


def __getattr__(name: str):
    """``FAMILIES``: the names of the registered benchmark families, in registration order."""
    if name == "FAMILIES":
        return tuple(families())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Selection:
    """One parsed selection: a family, one name in it or all (``None``), levels or all (``None``)."""

    family: str
    name: str | None = None
    levels: tuple[str, ...] | None = None

    def __str__(self) -> str:
        s = self.family + (f":{self.name}" if self.name else "")
        return s + ("@" + "+".join(self.levels) if self.levels else "")


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
    fam = get_family(family)
    levels = tuple(x.strip() for x in re.split(r"[+|]", lv) if x.strip()) if lv else None
    if "@" in text and not levels:
        raise ValueError(f"empty level list in {text!r}")
    sel = Selection(family, name or None, levels)
    if sel.name is not None:
        valid = fam.names()
        if valid and sel.name not in valid:
            raise ValueError(f"unknown {family} task {sel.name!r}; valid: {', '.join(valid)}")
    if sel.levels:
        fam.check_levels(sel.name, sel.levels)
    return sel


def parse_task_spec(spec: str) -> list[Selection]:
    """``"lveval:factrecall_en@128k,infinitebench:passkey,lveval"`` → a list of :class:`Selection`."""
    return [parse_one(item) for item in spec.split(",") if item.strip()] or _raise_empty(spec)


def _raise_empty(spec: str) -> list[Selection]:
    raise ValueError(f"no task selected in {spec!r}; families: {', '.join(families())}")


def _as_selections(selection: Selection | str | Sequence[Selection | str]) -> list[Selection]:
    if isinstance(selection, Selection):
        return [selection]
    if isinstance(selection, str):
        return parse_task_spec(selection)
    out: list[Selection] = []
    for s in selection:
        out.extend(_as_selections(s))
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
        request = LoadRequest(names=(sel.name,) if sel.name else None, levels=sel.levels, data_dir=data_dir,
                              limit=limit, tokenizer=tokenizer, seed=seed, prompt_set=prompt_set)
        for s in get_family(sel.family).load(request):
            if s.key not in seen:
                seen.add(s.key)
                out.append(s)
    return out


def task_settings(task: str | Sample) -> TaskSettings:
    """Default ``(truncation, chat_template, max_new_tokens)`` of a task (``family/name``) or a sample.

    LV-Eval: the official protocol (middle 15,500, no chat template); ``ahn-paper/...``: the paper's;
    InfiniteBench: `docs/BENCHMARKS.md` B4 (a sample made with the ``chat`` prompt set gets the chat template). The harness
    may override any of these explicitly; it records what it used.
    """
    sample = task if isinstance(task, Sample) else None
    name = sample.task if sample is not None else str(task)
    family, _, rest = name.partition("/")
    fam: BenchmarkFamily = get_family(family)
    if not rest:
        example = next(iter(fam.names()), "<name>")
        raise ValueError(f"task {name!r} needs a name: family/name, e.g. {family}/{example}")
    return fam.settings(rest, sample)


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
