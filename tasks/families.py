"""The built-in benchmark families: LV-Eval, InfiniteBench, LongBench (the AHN paper's six), the AHN paper's
variants, the synthetic generators and the real-text tasks (`tasks/realtext`), each as one `BenchmarkFamily`
(`tasks/family.py`).

Each family's facts stay in its adapter (`tasks/lveval.py`, …) and its scorer module (`tasks/scoring/…`); this
file only says, per family, which of them answer which question. The protocols are in `docs/BENCHMARKS.md`.
"""

from __future__ import annotations

import importlib
from functools import partial
from types import ModuleType

from tasks import ahn_paper, infinitebench, longbench, lveval
from tasks.family import BenchmarkFamily, LoadRequest, TaskInfo, register_family
from tasks.lengths import MAX_LENGTH_TOKENS, parse_length  # noqa: F401 (re-exported: every generated family's labels)
from tasks.prompting import NO_TRUNCATION, TaskSettings
from tasks.realtext.family import REALTEXT
from tasks.sample import Sample
from tasks.scbench.family import SCBENCH
from tasks.scoring import infinitebench as ib_scoring
from tasks.scoring import longbench as lb_scoring
from tasks.scoring import lveval as lv_scoring
from tasks.scoring import synthetic as syn_scoring

DEFAULT_SYNTHETIC_N_PER_LENGTH = 20

# The official InfiniteBench metric of each task, for listings and reports (`docs/BENCHMARKS.md` B1, B5).
IB_METRICS: dict[str, str] = {
    "passkey": "first digit run == label",
    "number_string": "first digit run == label",
    "kv_retrieval": "label in cleaned words",
    "longbook_sum_eng": "ROUGE-Lsum F (rouge_score)",
    "longbook_choice_eng": "option parsing",
    "longbook_qa_eng": "token F1",
    "longbook_qa_chn": "character F1",
    "longdialogue_qa_eng": "label[0] in uppercased words",
    "math_find": "first number == label",
    "math_calc": "correct-prefix ratio",
    "code_run": "int(last word) == label",
    "code_debug": "option parsing",
}
# The InfiniteBench metrics that give a yes/no verdict (0 or 1); the others are graded (F1, ROUGE, a ratio).
IB_BINARY = frozenset(IB_METRICS) - {"longbook_sum_eng", "longbook_qa_eng", "longbook_qa_chn", "math_calc"}




# ------------------------------------------------------------------------------------------------ LV-Eval


def _lveval_levels(name: str | None, levels: tuple[str, ...]) -> None:
    for lv in levels:
        lveval.check_level(lv)


def _lveval_tasks() -> dict[str, TaskInfo]:
    return {f"lveval/{d}": TaskInfo(f"lveval/{d}", metric.__name__, lang, partial(lv_scoring.score_lveval, d),
                                    binary=False)
            for d, (metric, lang) in lv_scoring.DATASETS.items()}


LVEVAL = BenchmarkFamily(
    name="lveval",
    names=lambda: lveval.DATASETS,
    load=lambda r: lveval.load(r.names, r.levels, r.data_dir, r.limit),
    settings=lambda rest, sample: lveval.settings(rest),
    tasks=_lveval_tasks,
    check_levels=_lveval_levels,
    description="LV-Eval: 11 datasets × 5 levels, the official protocol",
)

# ------------------------------------------------------------------------------------------ InfiniteBench


def _ib_settings(rest: str, sample: Sample | None) -> TaskSettings:
    prompt_set = sample.extra.get("prompt_set", "open") if sample is not None else "open"
    return infinitebench.settings(rest, prompt_set)


def _ib_tasks() -> dict[str, TaskInfo]:
    return {f"infinitebench/{t}": TaskInfo(f"infinitebench/{t}", IB_METRICS[t], "zh" if t == "longbook_qa_chn"
                                           else "en", partial(ib_scoring.score_infinitebench, t),
                                           binary=t in IB_BINARY)
            for t in ib_scoring.TASK_NAMES}


INFINITEBENCH = BenchmarkFamily(
    name="infinitebench",
    names=lambda: infinitebench.TASKS,
    load=lambda r: infinitebench.load(r.names, r.data_dir, r.limit, r.prompt_set),
    settings=_ib_settings,
    tasks=_ib_tasks,
    description="InfiniteBench: 12 tasks, the official scorer",
)

# ---------------------------------------------------------------------------------------------- LongBench


def _lb_tasks() -> dict[str, TaskInfo]:
    return {f"longbench/{t}": TaskInfo(f"longbench/{t}", metric.__name__, "zh" if t == "dureader" else "en",
                                       partial(lb_scoring.score_longbench, t), binary=False)
            for t, (metric, _) in lb_scoring.TASKS.items()}


LONGBENCH = BenchmarkFamily(
    name="longbench",
    names=lambda: longbench.TASKS,
    load=lambda r: longbench.load(r.names, r.data_dir, r.limit),
    settings=lambda rest, sample: longbench.settings(rest),
    tasks=_lb_tasks,
    description="LongBench v1: the AHN paper's six tasks, run as the paper ran them",
)

# ----------------------------------------------------------------------------------- the AHN paper's runs


def _paper_levels(name: str | None, levels: tuple[str, ...]) -> None:
    only_lveval = name is not None and name.startswith("lveval")
    for lv in levels:
        if lv != ahn_paper.LVEVAL_LEVEL or not only_lveval:
            valid = ahn_paper.LVEVAL_LEVEL if only_lveval else "none (select ahn-paper:lveval for its 128k level)"
            raise ValueError(f"bad level {lv!r} for ahn-paper:{name or '*'}; valid: {valid}")


def _paper_tasks() -> dict[str, TaskInfo]:
    out = {}
    for t in lb_scoring.INFINITEBENCH_TASKS:
        lang = "zh" if t.endswith("chn") else "en"
        out[f"ahn-paper/{t}"] = TaskInfo(f"ahn-paper/{t}", "ROUGE-L F (rouge 1.0.1)" + (", jieba-joined" if
                                         lang == "zh" else ""), lang, partial(lb_scoring.score_ahn_infinitebench, t),
                                         binary=False)
    return out


AHN_PAPER = BenchmarkFamily(
    name="ahn-paper",
    names=lambda: ahn_paper.NAMES,
    load=lambda r: ahn_paper.load(r.names, r.data_dir, r.limit, r.levels),
    settings=lambda rest, sample: ahn_paper.settings(rest),
    tasks=_paper_tasks,
    check_levels=_paper_levels,
    # the paper's LV-Eval runs score with the official LV-Eval metrics (`docs/BENCHMARKS.md` C1)
    aliases=lambda: {f"ahn-paper/{name}": name for name in _lveval_tasks()},
    description="the AHN paper's protocol: LV-Eval 128k, InfiniteBench En/Zh.QA, LongBench six",
)

# ---------------------------------------------------------------------------------------------- synthetic


def _synthetic() -> ModuleType:
    """``tasks.synthetic``, imported only when a synthetic task is asked for."""
    try:
        return importlib.import_module("tasks.synthetic")
    except ImportError as exc:  # pragma: no cover - depends on the other package being present
        raise ValueError(f"synthetic tasks are unavailable: cannot import tasks.synthetic ({exc})") from exc


def _synthetic_names() -> tuple[str, ...]:
    names = getattr(_synthetic(), "TASKS", None)
    return tuple(names) if names else ()


def _synthetic_levels(name: str | None, levels: tuple[str, ...]) -> None:
    for lv in levels:
        parse_length(lv)


def _synthetic_load(r: LoadRequest) -> list[Sample]:
    mod = _synthetic()
    if r.levels:
        lengths = [parse_length(x) for x in r.levels]
    else:
        default = getattr(mod, "DEFAULT_LENGTHS", None)
        if not default:
            name = r.names[0] if r.names and len(r.names) == 1 else "*"
            raise ValueError(f"synthetic:{name} needs lengths, e.g. synthetic:passkey@4k+8k")
        lengths = [int(x) for x in default]
    n = r.limit if r.limit is not None else int(getattr(mod, "DEFAULT_N_PER_LENGTH", DEFAULT_SYNTHETIC_N_PER_LENGTH))
    todo = list(r.names or _synthetic_names())
    if not todo:
        raise ValueError("synthetic: no task name given and tasks.synthetic lists none (TASKS)")
    out: list[Sample] = []
    for name in todo:
        out.extend(mod.load(name, lengths, n, r.seed, r.tokenizer))
    return out


def _synthetic_settings(rest: str, sample: Sample | None) -> TaskSettings:
    fn = getattr(_synthetic(), "task_settings", None)
    if fn is not None:
        got = fn(rest)
        return got if isinstance(got, TaskSettings) else TaskSettings(*got)
    max_new = sample.max_new_tokens if sample is not None else 16
    return TaskSettings(NO_TRUNCATION, False, max_new)


def _synthetic_tasks() -> dict[str, TaskInfo]:
    out = {f"synthetic/{t}": TaskInfo(f"synthetic/{t}", IB_METRICS[ib], "en",
                                      partial(syn_scoring.score_synthetic, t), binary=ib in IB_BINARY)
           for t, ib in syn_scoring.INFINITEBENCH_LIKE.items()}
    # string_match_all: the fraction of the needles found (graded when a task hides several)
    out.update({f"synthetic/{t}": TaskInfo(f"synthetic/{t}", "string_match_all", "en",
                                           partial(syn_scoring.score_synthetic, t), binary=t == "niah_single")
                for t in syn_scoring.NIAH_TASKS})
    return out


SYNTHETIC = BenchmarkFamily(
    name="synthetic",
    names=_synthetic_names,
    load=_synthetic_load,
    settings=_synthetic_settings,
    tasks=_synthetic_tasks,
    check_levels=_synthetic_levels,
    description="InfiniteBench- and RULER-style tasks generated at any length (levels are lengths in tokens)",
)

for _family in (LVEVAL, INFINITEBENCH, LONGBENCH, AHN_PAPER, SYNTHETIC, REALTEXT, SCBENCH):
    register_family(_family)
