"""LongBench v1, the six tasks of the AHN paper's Table 3, run the way the paper ran them (`docs/BENCHMARKS.md` C3).

Protocol: the task's ``dataset2prompt.json`` prompt, left truncation keeping the last ``32,000 − max_gen``
tokens when the prompt exceeds 32,000 (official LongBench middle-truncates instead), the chat template for
every task except triviaqa (a few-shot raw prompt), greedy.

Data (``zai-org/LongBench``, formerly ``THUDM/LongBench``, split ``test``): ``data.zip`` with members
``data/{task}.jsonl``; locally ``{dir}/{task}.jsonl``, ``{dir}/data/{task}.jsonl`` or ``{dir}/data.zip``.
The built-in prompts match the AHN copy of the file (see ``tasks.prompts.LONGBENCH_PROMPTS``): a ``dataset2prompt.json``
found in the data folder, or passed as ``prompts_path``, replaces them, and the samples record which was used.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks import hub
from tasks.prompting import TaskSettings, Truncation
from tasks.prompts import LONGBENCH_MAX_GEN, load_longbench_prompts
from tasks.sample import Sample

FAMILY = "longbench"
TASKS: tuple[str, ...] = tuple(LONGBENCH_MAX_GEN)
MAX_LENGTH = 32_000
NO_CHAT_TEMPLATE = frozenset({"triviaqa"})
METRIC: dict[str, str] = {
    "narrativeqa": "qa_f1_score",
    "hotpotqa": "qa_f1_score",
    "musique": "qa_f1_score",
    "dureader": "rouge_zh_score",
    "qmsum": "rouge_score",
    "triviaqa": "qa_f1_score",
}
HUB_ZIP = "data.zip"


def check_task(task: str) -> None:
    """ValueError naming the bad task and listing the valid ones."""
    if task not in TASKS:
        raise ValueError(f"unknown LongBench task {task!r}; valid: {', '.join(TASKS)}")


def settings(task: str) -> TaskSettings:
    """(left truncation at 32,000 keeping 32,000 − max_gen, chat template unless triviaqa, max_gen)."""
    check_task(task)
    gen = LONGBENCH_MAX_GEN[task]
    return TaskSettings(Truncation("left", MAX_LENGTH, reserve=gen), task not in NO_CHAT_TEMPLATE, gen)


def language(task: str) -> str:
    """``zh`` for dureader, else ``en``."""
    return "zh" if task == "dureader" else "en"


def record_to_sample(
    rec: dict[str, Any],
    task: str,
    index: int,
    prompt: str,
    task_prefix: str = FAMILY,
    provenance: dict[str, Any] | None = None,
) -> Sample:
    """One LongBench record as a Sample (``prompt`` = the task's template)."""
    from tasks.jsonl import require_text

    require_text(rec, ("context", "input"), f"LongBench {task} record {rec.get('_id', index)}")
    answers = rec.get("answers")
    answers = list(answers) if isinstance(answers, list) else ([] if answers is None else [answers])
    extra: dict[str, Any] = {
        "all_classes": rec.get("all_classes"),
        "length": rec.get("length"),
        "input": rec.get("input"),
        "metric": METRIC[task],
        "benchmark_task": f"{FAMILY}/{task}",
    }
    if provenance:
        extra["data"] = provenance
    rid = rec.get("_id")
    return Sample(
        task=f"{task_prefix}/{task}",
        id=str(rid if rid is not None else index),
        level=None,
        prompt=prompt.format(context=rec.get("context", ""), input=rec.get("input", "")),
        answers=answers,
        language=language(task),
        max_new_tokens=LONGBENCH_MAX_GEN[task],
        extra=extra,
    )


def _records(path: Path, member: str | None, limit: int | None) -> list[dict[str, Any]]:
    from tasks.jsonl import iter_objects

    if member is None:
        return [rec for _, rec in iter_objects(path, limit=limit)]
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            return [rec for _, rec in iter_objects(fh, f"{path}:{member}", limit)]
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a readable zip archive ({exc})") from None


def _zip_member(path: Path, task: str) -> str:
    want = f"{task}.jsonl"
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == want]
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a readable zip archive ({exc})") from None
    if not names:
        raise FileNotFoundError(f"{path} has no member data/{want}")
    return sorted(names, key=len)[0]


def load(
    tasks: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    task_prefix: str = FAMILY,
    prompts_path: str | Path | None = None,
) -> list[Sample]:
    """Samples of the chosen tasks (all six by default); ``limit`` keeps the first N per task."""
    names = list(tasks) if tasks else list(TASKS)
    for t in names:
        check_task(t)
    if prompts_path is None:
        prompts_path = hub.find_local(FAMILY, data_dir, ["dataset2prompt.json", "config/dataset2prompt.json"])
    prompts = load_longbench_prompts(prompts_path)
    prompt_source = str(prompts_path) if prompts_path is not None else "builtin (AHN copy of dataset2prompt.json)"
    plan: dict[str, tuple[Path, str | None, dict[str, Any]] | None] = {}
    for t in names:
        local = hub.find_local(FAMILY, data_dir, [f"{t}.jsonl", f"data/{t}.jsonl"])
        plan[t] = (local, None, {"origin": "local", "path": str(local)}) if local is not None else None
    zfile = None
    if any(v is None for v in plan.values()):
        zfile = hub.fetch(FAMILY, [HUB_ZIP], data_dir)[0]
    samples: list[Sample] = []
    for t, where in plan.items():
        if where is None:
            assert zfile is not None
            member = _zip_member(zfile.path, t)
            where = (zfile.path, member, {**zfile.provenance(), "member": member})
        path, member, prov = where
        prov = {**prov, "prompts": prompt_source}
        for i, rec in enumerate(_records(path, member, limit)):
            samples.append(record_to_sample(rec, t, i, prompts[t], task_prefix, prov))
    return samples
