"""The ``scbench`` benchmark family (`tasks/family.py`): ``scbench:kv@4k+8k`` generates records whose context
prompts have those lengths in the model's tokens (default 4k to 128k); ``--limit`` is records per length (default
20), each giving one sample per question. With ``--data-dir`` holding ``scbench_<task>.jsonl`` (SCBench's own
files), that task's records are read from it instead, and lengths must not be given."""

from __future__ import annotations

from functools import partial

from tasks.family import BenchmarkFamily, LoadRequest, TaskInfo
from tasks.lengths import check_length_levels, parse_length
from tasks.prompting import NO_TRUNCATION, TaskSettings
from tasks.sample import Sample
from tasks.scoring.scbench import BINARY, METRICS, score_scbench

from . import (
    DEFAULT_LENGTHS,
    DEFAULT_N_PER_LENGTH,
    FAMILY,
    MAX_NEW_TOKENS,
    TASKS,
    check_task,
    data_file,
    file_samples,
    load,
)


def _load(r: LoadRequest) -> list[Sample]:
    lengths = [parse_length(x) for x in r.levels] if r.levels else list(DEFAULT_LENGTHS)
    n = r.limit if r.limit is not None else DEFAULT_N_PER_LENGTH
    out: list[Sample] = []
    for name in r.names or TASKS:
        check_task(name)
        path = data_file(r.data_dir, name) if r.data_dir is not None else None
        if path is not None and path.exists():
            if r.levels:
                raise ValueError(f"scbench:{name} reads {path}, whose contexts have their own lengths; drop the "
                                 f"'@{'+'.join(r.levels)}' part (lengths apply to generated records)")
            out.extend(file_samples(path, name, r.limit))
        else:
            out.extend(load(name, lengths, n, r.seed, r.tokenizer))
    return out


def _settings(rest: str, sample: Sample | None) -> TaskSettings:
    """No truncation (contexts are built to their length), no chat template (as the synthetic tasks), and
    SCBench's generation budget of the task."""
    check_task(rest)
    return TaskSettings(NO_TRUNCATION, False, MAX_NEW_TOKENS[rest])


def _tasks() -> dict[str, TaskInfo]:
    return {f"{FAMILY}/{t}": TaskInfo(f"{FAMILY}/{t}", METRICS[t], "en", partial(score_scbench, t),
                                      binary=t in BINARY)
            for t in TASKS}


SCBENCH = BenchmarkFamily(
    name=FAMILY,
    names=lambda: TASKS,
    load=_load,
    settings=_settings,
    tasks=_tasks,
    check_levels=check_length_levels,
    description="SCBench's string retrieval (kv, prefix_suffix, vt): one context, several questions "
                "(levels are context lengths in tokens)",
)
