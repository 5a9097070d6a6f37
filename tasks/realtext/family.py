"""The ``realtext`` benchmark family (`tasks/family.py`): selectable as ``realtext:niah_single@4k+8k`` (levels are
prompt lengths in the model's tokens, default 4k to 128k; ``--limit`` is samples per length, default 32)."""

from __future__ import annotations

from functools import partial

from tasks.family import BenchmarkFamily, LoadRequest, TaskInfo
from tasks.lengths import check_length_levels, parse_length
from tasks.prompting import NO_TRUNCATION, TaskSettings
from tasks.sample import Sample
from tasks.scoring.realtext import METRICS, score_realtext

from . import DEFAULT_LENGTHS, DEFAULT_N_PER_LENGTH, FAMILY, LANGUAGE, MAX_NEW_TOKENS, TASKS, check_task, load


def _load(r: LoadRequest) -> list[Sample]:
    lengths = [parse_length(x) for x in r.levels] if r.levels else list(DEFAULT_LENGTHS)
    n = r.limit if r.limit is not None else DEFAULT_N_PER_LENGTH
    out: list[Sample] = []
    for name in r.names or TASKS:
        out.extend(load(name, lengths, n, r.seed, r.tokenizer))
    return out


def _settings(rest: str, sample: Sample | None) -> TaskSettings:
    """No truncation (prompts are built to their length) and no chat template, as the synthetic tasks and
    LV-Eval's official protocol; the generation budget of the task's benchmark."""
    check_task(rest)
    return TaskSettings(NO_TRUNCATION, False, MAX_NEW_TOKENS[rest])


def _tasks() -> dict[str, TaskInfo]:
    return {f"{FAMILY}/{t}": TaskInfo(f"{FAMILY}/{t}", METRICS[t], LANGUAGE[t], partial(score_realtext, t),
                                      binary=t in BINARY)
            for t in TASKS}


#: Tasks scored 0 or 1 (one needle found or not; one value equal or not), whose intervals are Wilson's; the
#: multi-key needle's share of keys found and LV-Eval's factrecall metric are graded.
BINARY = frozenset({"niah_single", "code_default"})


REALTEXT = BenchmarkFamily(
    name=FAMILY,
    names=lambda: TASKS,
    load=_load,
    settings=_settings,
    tasks=_tasks,
    check_levels=check_length_levels,
    description="needles, LV-Eval factrecall and a code question in real text the repository ships "
                "(levels are lengths in tokens)",
)
