"""The AHN paper's evaluation variants (`docs/BENCHMARKS.md` C), kept apart from the official protocols.

Why separate task names: the paper changed truncation, prompts and metrics, so its numbers are not
comparable with the official tables, and a run must never mix the two under one task key.

* ``ahn-paper/lveval/<dataset>``: LV-Eval 128k level only, official prompts, middle truncation at 256,000
  tokens (effectively none), chat template (C1).
* ``ahn-paper/longbook_qa_eng`` and ``ahn-paper/longbook_qa_chn``: InfiniteBench En.QA / Zh.QA with the
  paper's single English prompt, left truncation keeping the last 128,000 − 256 tokens, chat template after
  truncation, max_gen 256, ROUGE-L (C2).
* ``ahn-paper:longbench`` selects the LongBench six; their samples are plain ``longbench/<task>`` because
  the harness runs LongBench only under the paper's protocol (C3), so one name and one scorer suffice.

The LV-Eval and LongBench samples carry ``extra["benchmark_task"]`` (``lveval/<dataset>``...), the task whose
official scorer applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks import hub, infinitebench, longbench, lveval
from tasks.jsonl import iter_objects
from tasks.prompting import TaskSettings, Truncation
from tasks.prompts import AHN_INFINITEBENCH_MAX_GEN, AHN_INFINITEBENCH_PROMPT
from tasks.sample import Sample

FAMILY = "ahn-paper"
LVEVAL_LEVEL = "128k"
IB_TASKS: tuple[str, ...] = ("longbook_qa_eng", "longbook_qa_chn")
IB_MAX_LENGTH = 128_000
IB_TRUNCATION = Truncation("left", IB_MAX_LENGTH, reserve=AHN_INFINITEBENCH_MAX_GEN)
CHAT_TEMPLATE = True

# Every selectable name; "lveval" and "longbench" are groups.
GROUPS: dict[str, tuple[str, ...]] = {
    "lveval": tuple(f"lveval/{d}" for d in lveval.DATASETS),
    "longbench": tuple(f"longbench/{t}" for t in longbench.TASKS),
}
TASKS: tuple[str, ...] = (*GROUPS["lveval"], *IB_TASKS, *GROUPS["longbench"])
NAMES: tuple[str, ...] = ("lveval", *IB_TASKS, "longbench", *GROUPS["lveval"], *GROUPS["longbench"])


def expand(name: str) -> list[str]:
    """A selectable name as the list of task names it stands for; ValueError for an unknown one."""
    if name in GROUPS:
        return list(GROUPS[name])
    if name in TASKS:
        return [name]
    raise ValueError(f"unknown ahn-paper task {name!r}; valid: {', '.join(NAMES)}")


def settings(name: str) -> TaskSettings:
    """Default (truncation, chat template, max_new_tokens) of one paper task (the paper's protocol)."""
    expand(name)
    if name.startswith("lveval/"):
        return lveval.settings(name.split("/", 1)[1], protocol="paper")
    if name.startswith("longbench/"):
        return longbench.settings(name.split("/", 1)[1])
    if name in IB_TASKS:
        return TaskSettings(IB_TRUNCATION, CHAT_TEMPLATE, AHN_INFINITEBENCH_MAX_GEN)
    raise ValueError(f"ahn-paper name {name!r} is a group; ask for one of its tasks: {', '.join(expand(name))}")


def ib_record_to_sample(rec: dict[str, Any], task: str, index: int, provenance: dict[str, Any] | None = None) -> Sample:
    """An InfiniteBench En.QA/Zh.QA record with the paper's prompt (the same English prompt for both)."""
    if task not in IB_TASKS:
        raise ValueError(f"unknown ahn-paper InfiniteBench task {task!r}; valid: {', '.join(IB_TASKS)}")
    answers = [a if isinstance(a, str) else str(a) for a in infinitebench._as_list(rec.get("answer"))]
    extra: dict[str, Any] = {
        "input": rec.get("input"),
        "metric": "ahn_rouge_l",
        "benchmark_task": f"{infinitebench.FAMILY}/{task}",
    }
    if provenance:
        extra["data"] = provenance
    rid = rec.get("id")
    return Sample(
        task=f"{FAMILY}/{task}",
        id=str(rid if rid is not None else index),
        level=None,
        prompt=AHN_INFINITEBENCH_PROMPT.format(context=rec.get("context", ""), input=rec.get("input", "")),
        answers=answers,
        language=infinitebench.language(task),
        max_new_tokens=AHN_INFINITEBENCH_MAX_GEN,
        extra=extra,
    )


def _load_ib(tasks: Sequence[str], data_dir: str | Path | None, limit: int | None) -> list[Sample]:

    files = hub.fetch(infinitebench.FAMILY, [f"{t}.jsonl" for t in tasks], data_dir)
    out: list[Sample] = []
    for t, f in zip(tasks, files):
        for n, (_, rec) in enumerate(iter_objects(f.path, limit=limit)):
            out.append(ib_record_to_sample(rec, t, n, f.provenance()))
    return out


def load(
    names: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    levels: Sequence[str] | None = None,
) -> list[Sample]:
    """Samples of the chosen paper tasks (all by default). LV-Eval tasks exist at the 128k level only.

    ``data_dir`` is the folder holding the benchmarks' files (also looked up in ``<data_dir>/lveval``,
    ``/infinitebench``, ``/longbench``).
    """
    if levels and any(lv != LVEVAL_LEVEL for lv in levels):
        bad = [lv for lv in levels if lv != LVEVAL_LEVEL]
        raise ValueError(f"ahn-paper tasks have no level {bad[0]!r}; valid: {LVEVAL_LEVEL} (LV-Eval only)")
    wanted: list[str] = []
    for n in names or ["lveval", *IB_TASKS, "longbench"]:
        for t in expand(n):
            if t not in wanted:
                wanted.append(t)
    lv_sets = [t.split("/", 1)[1] for t in wanted if t.startswith("lveval/")]
    lb_sets = [t.split("/", 1)[1] for t in wanted if t.startswith("longbench/")]
    ib_sets = [t for t in wanted if t in IB_TASKS]
    samples: list[Sample] = []
    if lv_sets:
        samples += lveval.load(lv_sets, [LVEVAL_LEVEL], data_dir, limit, task_prefix=f"{FAMILY}/lveval")
    if ib_sets:
        samples += _load_ib(ib_sets, data_dir, limit)
    if lb_sets:
        samples += longbench.load(lb_sets, data_dir, limit)
    return samples
