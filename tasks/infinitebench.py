"""InfiniteBench adapter: the 12 tasks, read from the raw ``{task}.jsonl`` files (`docs/BENCHMARKS.md` B).

Raw jsonl, not ``load_dataset``: the latter needs string Features that turn the int/float labels of
code_run and math_find into strings and break the official comparisons. Labels keep the official types
(B2.3) and ``get_answer`` (B2.4): choice and code_debug become ``[option_text, letter]``.

``Sample.answers`` is always a list (passkey ``["12345"]``, code_run ``[3]``, math_calc ``[v1, v2, ...]``,
choice ``[text, "B"]``); ``extra["label"]`` holds the ground truth exactly as the official scorer receives
it (kv_retrieval unwrapped to the value string, choice/code_debug the ``[text, letter]`` pair, others the
list).

Defaults (B4.3): the open-model prompt set without a chat template, middle truncation at 128×1024 tokens
with InfiniteBench's arithmetic; the ``chat`` prompt set is meant for a chat template (one user turn).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks import hub
from tasks.prompting import TaskSettings, Truncation
from tasks.prompts import INFINITEBENCH_MAX_GEN, INFINITEBENCH_PROMPT_SETS
from tasks.sample import Sample

FAMILY = "infinitebench"
TASKS: tuple[str, ...] = tuple(INFINITEBENCH_MAX_GEN)
PROMPT_SETS: tuple[str, ...] = tuple(INFINITEBENCH_PROMPT_SETS)
CHOICE_TASKS = frozenset({"longbook_choice_eng", "code_debug"})
STRING_LABEL_TASKS = frozenset(
    {"passkey", "number_string", "kv_retrieval", "longbook_sum_eng", "longbook_qa_eng", "longbook_qa_chn",
     "longdialogue_qa_eng"}
)
OPTION_LETTERS = "ABCD"

TRUNCATION = Truncation("middle", 128 * 1024, style="infinitebench")


def settings(task: str, prompt_set: str = "open") -> TaskSettings:
    """Default (truncation, chat template, max_new_tokens): chat template only for the ``chat`` set."""
    check_task(task)
    check_prompt_set(prompt_set)
    return TaskSettings(TRUNCATION, prompt_set == "chat", INFINITEBENCH_MAX_GEN[task])


def check_task(task: str) -> None:
    """ValueError naming the bad task and listing the valid ones."""
    if task not in TASKS:
        raise ValueError(f"unknown InfiniteBench task {task!r}; valid: {', '.join(TASKS)}")


def check_prompt_set(prompt_set: str) -> None:
    """ValueError naming the bad prompt set and listing the valid ones."""
    if prompt_set not in INFINITEBENCH_PROMPT_SETS:
        raise ValueError(f"unknown InfiniteBench prompt set {prompt_set!r}; valid: {', '.join(PROMPT_SETS)}")


def language(task: str) -> str:
    """``zh`` for longbook_qa_chn, else ``en``."""
    return "zh" if task == "longbook_qa_chn" else "en"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _number(value: Any) -> int | float:
    """int or float label from a JSON number or a stringified one (``"48.0"`` stays a float)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    return float(text) if any(c in text for c in ".eE") else int(text)


def get_answer(task: str, answer: Any, options: Sequence[str]) -> list[Any]:
    """The label list in the official types (B2.3-B2.4).

    Choice tasks: ``[option_text, letter]`` (kept as is when already in that form). math_calc: a flat list
    of ints (``[[...]]`` accepted). code_run: ``[int]``; math_find: ``[int | float]``; the string tasks:
    ``[str, ...]``.
    """
    labels = _as_list(answer)
    if task in CHOICE_TASKS:
        if len(labels) == 2 and labels[1] in tuple(OPTION_LETTERS):
            return [str(labels[0]), labels[1]]
        if not labels:
            raise ValueError(f"{task}: empty answer")
        text = str(labels[0])
        if text not in options:
            raise ValueError(f"{task}: answer {text!r} is not one of the options {list(options)!r}")
        return [text, OPTION_LETTERS[list(options).index(text)]]
    if task == "math_calc":
        if len(labels) == 1 and isinstance(labels[0], list):
            labels = labels[0]
        return [int(x) for x in labels]
    if task == "code_run":
        return [int(_number(x)) for x in labels]
    if task == "math_find":
        return [_number(x) for x in labels]
    if task in STRING_LABEL_TASKS:
        return [x if isinstance(x, str) else str(x) for x in labels]
    return labels


def official_label(task: str, answers: list[Any]) -> Any:
    """The ground truth as the official scorer receives it (kv_retrieval unwrapped, B2.4)."""
    if task == "kv_retrieval" and answers:
        return answers[0]
    return answers


_FUNC_CALL = re.compile(r"func_[0-9]+\(\-?[0-9]+\)")
_MATH_TARGET = re.compile(r"The .+ of")


def placeholders(task: str, record: dict[str, Any]) -> dict[str, str]:
    """The template fields of one record (B3): context, input/question, options, code_run's func_call,
    math_find's prefix."""
    question = str(record.get("input", ""))
    options = list(record.get("options") or [])
    fields = {"context": str(record.get("context", "")), "input": question, "question": question}
    for i, letter in enumerate(OPTION_LETTERS):
        fields[f"OPTION_{letter}"] = str(options[i]) if i < len(options) else ""
    fields["func"] = fields["func_call"] = fields["prefix"] = ""
    if task == "code_run":
        m = _FUNC_CALL.search(question)
        if m is None:
            raise ValueError(f"code_run: no func_N(x) call in input {question!r}")
        fields["func_call"] = m.group(0)
        fields["func"] = m.group(0).split("(")[0]
    if task == "math_find":
        m = _MATH_TARGET.search(question)
        if m is None:
            raise ValueError(f"math_find: no 'The ... of' in input {question!r}")
        target = m.group(0).lower()[: -len(" of")]
        fields["prefix"] = f"What is {target} in the following list?"
    return fields


def record_to_sample(
    rec: dict[str, Any],
    task: str,
    index: int,
    prompt_set: str = "open",
    provenance: dict[str, Any] | None = None,
) -> Sample:
    """One raw InfiniteBench record as a Sample with the chosen prompt set filled in."""
    check_task(task)
    check_prompt_set(prompt_set)
    from tasks.jsonl import require_text

    require_text(rec, ("context", "input"), f"InfiniteBench {task} record {rec.get('id', index)}")
    options = [str(o) for o in (rec.get("options") or [])]
    answers = get_answer(task, rec.get("answer"), options)
    prompt = INFINITEBENCH_PROMPT_SETS[prompt_set][task].format(**placeholders(task, rec))
    extra: dict[str, Any] = {
        "label": official_label(task, answers),
        "options": options,
        "prompt_set": prompt_set,
        "input": rec.get("input"),
        "metric": f"{FAMILY}/{task}",
        "benchmark_task": f"{FAMILY}/{task}",
    }
    for key in ("len", "length"):
        if key in rec:
            extra["length"] = rec[key]
    if provenance:
        extra["data"] = provenance
    rid = rec.get("id")
    return Sample(
        task=f"{FAMILY}/{task}",
        id=str(rid if rid is not None else index),
        level=None,
        prompt=prompt,
        answers=answers,
        language=language(task),
        max_new_tokens=INFINITEBENCH_MAX_GEN[task],
        extra=extra,
    )


def read_file(
    path: str | Path,
    task: str,
    prompt_set: str = "open",
    limit: int | None = None,
    provenance: dict[str, Any] | None = None,
) -> list[Sample]:
    """Samples from one raw jsonl file of ``task`` (the first ``limit`` records)."""
    path = Path(path)
    from tasks.jsonl import iter_objects

    return [record_to_sample(rec, task, i, prompt_set, provenance)
            for i, (_, rec) in enumerate(iter_objects(path, limit=limit))]


def load(
    tasks: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    prompt_set: str = "open",
) -> list[Sample]:
    """Samples of the chosen tasks (all by default) from ``{task}.jsonl`` in ``data_dir``, the cache or the
    Hub."""
    names = list(tasks) if tasks else list(TASKS)
    for t in names:
        check_task(t)
    check_prompt_set(prompt_set)
    files = hub.fetch(FAMILY, [f"{t}.jsonl" for t in names], data_dir)
    samples: list[Sample] = []
    for t, f in zip(names, files):
        samples.extend(read_file(f.path, t, prompt_set, limit, f.provenance()))
    return samples
