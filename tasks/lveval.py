"""LV-Eval adapter: 11 datasets × 5 levels, read from the published zips or flat jsonl files.

Layouts accepted (`docs/BENCHMARKS.md` A2): the Hub zip ``{dataset}.zip`` with members ``{dataset}/{dataset}_{level}.jsonl``,
the unzipped folder ``{dir}/{dataset}/{dataset}_{level}.jsonl``, and the official loader's flat
``{dir}/{dataset}_{level}.jsonl``. Field aliases ``gold_ans`` (= ``answer_keywords``) and ``distractor``
(= ``confusing_facts``) are accepted. Only ``answers[0]`` is scored officially; the full list is kept. ``extra["answer_keywords"]`` and
``extra["confusing_facts"]`` hold the optional fields under their dataset names, whichever alias the file used.

Defaults: the official protocol middle-truncates to 15,500 tokens and (having no Qwen/Llama-3 branch)
applies no chat template; the AHN paper used 256,000 and Qwen's chat template (``ahn-paper/lveval``).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks import hub
from tasks.prompting import TaskSettings, Truncation
from tasks.prompts import LVEVAL_DATASET_PROMPT, LVEVAL_MAX_GEN
from tasks.sample import Sample

log = logging.getLogger(__name__)

FAMILY = "lveval"
DATASETS: tuple[str, ...] = (
    "loogle_SD_mixup",
    "cmrc_mixup",
    "multifieldqa_en_mixup",
    "multifieldqa_zh_mixup",
    "factrecall_en",
    "factrecall_zh",
    "dureader_mixup",
    "loogle_CR_mixup",
    "loogle_MIR_mixup",
    "hotpotwikiqa_mixup",
    "lic_mixup",
)
LEVELS: tuple[str, ...] = ("16k", "32k", "64k", "128k", "256k")

LANGUAGE: dict[str, str] = {
    d: ("zh" if d in {"cmrc_mixup", "multifieldqa_zh_mixup", "factrecall_zh", "dureader_mixup", "lic_mixup"} else "en")
    for d in DATASETS
}
# The official metric function of each dataset (docs/BENCHMARKS.md A1), for the scorer and the report.
METRIC: dict[str, str] = {
    "loogle_SD_mixup": "qa_f1_score_with_gold_ans",
    "cmrc_mixup": "qa_f1_zh_score_with_gold_ans",
    "multifieldqa_en_mixup": "qa_f1_score_with_gold_ans",
    "multifieldqa_zh_mixup": "qa_f1_zh_score_with_gold_ans",
    "factrecall_en": "qa_f1_score",
    "factrecall_zh": "qa_f1_zh_score",
    "dureader_mixup": "rouge_zh_score_blacklist",
    "loogle_CR_mixup": "qa_f1_score_with_gold_ans",
    "loogle_MIR_mixup": "qa_f1_score_with_gold_ans",
    "hotpotwikiqa_mixup": "qa_f1_score_with_gold_ans",
    "lic_mixup": "qa_f1_zh_score_with_gold_ans",
}
# Datasets whose records carry answer_keywords (docs/BENCHMARKS.md A1, optional fields): empty ones are logged.
HAS_KEYWORDS = frozenset(
    {"loogle_SD_mixup", "multifieldqa_en_mixup", "multifieldqa_zh_mixup", "loogle_CR_mixup", "loogle_MIR_mixup",
     "hotpotwikiqa_mixup", "lic_mixup"}
)

OFFICIAL_TRUNCATION = Truncation("middle", 15_500)  # official --model-max-length default
PAPER_TRUNCATION = Truncation("middle", 256_000)  # AHN paper (effectively none)
OFFICIAL_CHAT_TEMPLATE = False  # official build_chat has no Qwen / Llama-3 branch
PAPER_CHAT_TEMPLATE = True  # AHN copy: one user turn, generation prompt (docs/AHN.md §10.6)


def settings(dataset: str, protocol: str = "official") -> TaskSettings:
    """Default (truncation, chat template, max_new_tokens) under the ``official`` or ``paper`` protocol."""
    check_dataset(dataset)
    if protocol == "official":
        return TaskSettings(OFFICIAL_TRUNCATION, OFFICIAL_CHAT_TEMPLATE, LVEVAL_MAX_GEN[dataset])
    if protocol == "paper":
        return TaskSettings(PAPER_TRUNCATION, PAPER_CHAT_TEMPLATE, LVEVAL_MAX_GEN[dataset])
    raise ValueError(f"unknown LV-Eval protocol {protocol!r}; valid: 'official', 'paper'")


def check_dataset(dataset: str) -> None:
    """ValueError naming the bad dataset and listing the valid ones."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown LV-Eval dataset {dataset!r}; valid: {', '.join(DATASETS)}")


def check_level(level: str) -> None:
    """ValueError naming the bad level and listing the valid ones."""
    if level not in LEVELS:
        raise ValueError(f"unknown LV-Eval level {level!r}; valid: {', '.join(LEVELS)}")


def split_config(config: str) -> tuple[str, str]:
    """``factrecall_en_128k`` → (``factrecall_en``, ``128k``), as the official code splits config names."""
    dataset, _, level = config.rpartition("_")
    return dataset, level


def _first(rec: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in rec and rec[k] is not None:
            return rec[k]
    return None


def record_to_sample(
    rec: dict[str, Any],
    dataset: str,
    level: str,
    index: int,
    task_prefix: str = FAMILY,
    provenance: dict[str, Any] | None = None,
) -> Sample:
    """One LV-Eval record as a Sample: the official prompt filled with ``context`` and ``input``."""
    from tasks.jsonl import require_text

    require_text(rec, ("context", "input"), f"LV-Eval {dataset}_{level} record {index}")
    prompt = LVEVAL_DATASET_PROMPT[dataset].format(context=rec["context"], input=rec["input"])
    answers = rec.get("answers")
    if answers is None:
        answers = []
    elif not isinstance(answers, list):
        answers = [answers]
    extra: dict[str, Any] = {
        "answer_keywords": _first(rec, "answer_keywords", "gold_ans"),
        "confusing_facts": _first(rec, "confusing_facts", "distractor"),
        "length": rec.get("length"),
        "input": rec["input"],
        "metric": METRIC[dataset],
        "benchmark_task": f"{FAMILY}/{dataset}",
    }
    if provenance:
        extra["data"] = provenance
    return Sample(
        task=f"{task_prefix}/{dataset}",
        id=str(index),
        level=level,
        prompt=prompt,
        answers=list(answers),
        language=LANGUAGE[dataset],
        max_new_tokens=LVEVAL_MAX_GEN[dataset],
        extra=extra,
    )


def _read_records(path: Path, member: str | None, limit: int | None) -> list[dict[str, Any]]:
    from tasks.jsonl import iter_objects

    if member is None:
        return [rec for _, rec in iter_objects(path, limit=limit)]
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            return [rec for _, rec in iter_objects(fh, f"{path}:{member}", limit)]
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a readable zip archive ({exc})") from None


def _zip_member(path: Path, dataset: str, level: str) -> str:
    want = f"{dataset}_{level}.jsonl"
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == want]
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a readable zip archive ({exc})") from None
    if not names:
        raise FileNotFoundError(f"{path} has no member {dataset}/{want}")
    return sorted(names, key=len)[0]


def _log_empty_keywords(samples: Sequence[Sample], dataset: str, level: str) -> None:
    if dataset not in HAS_KEYWORDS or not samples:
        return
    empty = sum(1 for s in samples if not s.extra.get("answer_keywords"))
    if empty:
        log.warning(
            "LV-Eval %s_%s: %d of %d records have empty answer_keywords; the keyword gate is skipped for them "
            "(known problem, LV-Eval issue #7)", dataset, level, empty, len(samples)
        )


def load(
    datasets: Sequence[str] | None = None,
    levels: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    task_prefix: str = FAMILY,
) -> list[Sample]:
    """Samples of the chosen datasets and levels (all by default); ``limit`` keeps the first N per config.

    Local files win (flat jsonl, unzipped folder, zip); the rest comes from the Hub zips (one per dataset),
    all fetched or reported missing together.
    """
    datasets = list(datasets) if datasets else list(DATASETS)
    levels = list(levels) if levels else list(LEVELS)
    for d in datasets:
        check_dataset(d)
    for lv in levels:
        check_level(lv)
    plan: dict[tuple[str, str], tuple[Path, str | None, dict[str, Any]] | None] = {}
    need_zip: list[str] = []
    for d in datasets:
        for lv in levels:
            flat = hub.find_local(FAMILY, data_dir, [f"{d}_{lv}.jsonl", f"{d}/{d}_{lv}.jsonl"])
            if flat is not None:
                plan[(d, lv)] = (flat, None, {"origin": "local", "path": str(flat)})
                continue
            plan[(d, lv)] = None
            if f"{d}.zip" not in need_zip:
                need_zip.append(f"{d}.zip")
    zips = {f.filename: f for f in hub.fetch(FAMILY, need_zip, data_dir)} if need_zip else {}
    samples: list[Sample] = []
    for (d, lv), where in plan.items():
        if where is None:
            zfile = zips[f"{d}.zip"]
            member = _zip_member(zfile.path, d, lv)
            where = (zfile.path, member, {**zfile.provenance(), "member": member})
        path, member, prov = where
        recs = _read_records(path, member, limit)
        chunk = [record_to_sample(r, d, lv, i, task_prefix, prov) for i, r in enumerate(recs)]
        _log_empty_keywords(chunk, d, lv)
        samples.extend(chunk)
    return samples
