"""`harness run --shared-context MODE`: one context prefilled once into the method's memory, then several questions.

SCBench's two modes, and the single-question form beside them (`baselines/shared_context.py` holds the engine):

* ``multi-request``: the context prefilled once; every question answered from its own copy (snapshot) of that
  cache, isolated from the others;
* ``multi-turn``: the questions in turns on one cache; before turn i + 1 the cache gets turn i's question and
  answer: the reference answer (``--history gold``, SCBench's default) or the model's own (``--history own``);
* ``single``: context and question fed as one prompt, once per question (the query-aware protocol of
  `harness run`: a method that compresses the prompt sees the question).

The context and questions are fed as raw text (no chat template, no truncation) through the eager engine, in
one process: the context's ids, then each question's (and, in multi-turn, each history answer's) ids encoded
without special tokens. One record per turn
(key ``task|level|id#t<turn>``, fields as `harness run` records plus ``turn`` and ``mode``), appended and
fsynced as soon as the turn ends. A resumed run continues a partly recorded sample at its first missing turn:
it prefills the context again and, in multi-turn, feeds the recorded turns' questions and answers (the
reference answers, or the recorded generated ids with ``--history own``) without decoding them, which gives
the cache the uninterrupted run had. ``prompt_tokens`` counts the tokens the memory had seen when the answer
began (context, history, question); ``prefill_s`` is the question's own feed (``single``: the whole prompt's),
``extra["context_prefill_s"]`` the shared context's. Besides the usual `summary.md` the run folder gets
`turns.md` / `turns.json`: the score by turn index and length bucket.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from baselines.costs import CostModel
from baselines.engine import generate, prefill
from baselines.registry import cost_model_of
from baselines.shared_context import answer, extend, snapshot
from harness.buckets import bucket_of, sort_buckets
from harness.console import tqdm_disable
from harness.hashing import record_hashes
from harness.loading import Loaded, loaded
from harness.presets import Preset
from harness.provenance import config_hash
from harness.record import SampleRecord
from harness.runner import RunSettings, _dims, _load_samples_once, manifest_for, preset_tasks
from harness.store import RunStore, load_run
from harness.summary import write_summary
from tasks.safe_write import write_atomic
from tasks.sample import Sample
from tasks.scoring import score_detailed
from tasks.synthetic.multi_needle import QUESTION, TASK_NAMES

log = logging.getLogger(__name__)

MODES = ("single", "multi-request", "multi-turn")
HISTORIES = ("gold", "own")
DEFAULT_MAX_NEW = 32


@dataclass(frozen=True)
class Question:
    """One turn: the text fed after the context, its references, and the task whose scorer grades it."""

    text: str
    answers: list[str]
    scorer: str
    history: str  # the text fed after the question in multi-turn with --history gold


@dataclass(frozen=True)
class Shared:
    """A sample as one context and its questions."""

    context: str
    questions: list[Question]


def _passkey_k(sample: Sample) -> Shared:
    """A `synthetic:passkey_k*` prompt cut where its question starts: one question per labelled key, in the
    needles' order, each asked in the prompt's own words ("What is the pass key of NAME?" then the cue)."""
    asked = sample.extra["input"]
    cut = sample.prompt.rindex("\n\n" + asked)
    tail = sample.prompt[cut:]
    questions = []
    for name in sample.extra["names"]:
        found = re.search(rf"The pass key of {re.escape(name)} is (\d+)\.", sample.prompt)
        if found is None:
            raise ValueError(f"{sample.key}: the needle of {name!r} is not in the prompt")
        key = found.group(1)
        questions.append(Question(tail.replace(asked, QUESTION.format(name=name), 1), [key], "synthetic/passkey",
                                  f" {key}"))
    return Shared(sample.prompt[:cut], questions)


def _given_turns(sample: Sample) -> Shared:
    """`extra["turns"]`'s questions on the sample's context: `prompt[:extra["context_chars"]]` where the sample is
    one question of a shared record (the scbench form: prompt = context + separator + this turn's question; the
    separator is put before every question), else the whole prompt."""
    turns, sep = sample.extra["turns"], ""
    cut = sample.extra.get("context_chars")
    if cut is not None:
        turn = sample.extra.get("turn", 0)
        asked = turns[turn]["input"] if isinstance(turns, list) and 0 <= turn < len(turns) else None
        if not isinstance(cut, int) or not isinstance(asked, str) or not sample.prompt.endswith(asked) \
                or len(sample.prompt) - len(asked) < cut:
            raise ValueError(f"{sample.key}: extra['context_chars'] and extra['turn'] must cut the prompt into its "
                             "context and this turn's question")
        sep = sample.prompt[cut:len(sample.prompt) - len(asked)]
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{sample.key}: extra['turns'] must be a non-empty list of {{'input', 'answers'}}")
    questions = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("input"), str) \
                or not isinstance(turn.get("answers"), list) or not turn["answers"]:
            raise ValueError(f"{sample.key}: extra['turns'][{i}] must be {{'input': str, 'answers': [str, ...]}}, "
                             f"got {turn!r:.200}")
        questions.append(Question(sep + turn["input"], list(turn["answers"]), sample.task,
                                  f" {turn['answers'][0]}"))
    return Shared(sample.prompt if cut is None else sample.prompt[:cut], questions)


def contexts(samples: list[Sample]) -> list[Sample]:
    """One sample per shared context: samples that are questions of one record (the same task, level and
    `extra["context_id"]`) are one context; the first of them stands for it."""
    seen: dict[tuple, Sample] = {}
    for s in samples:
        cid = s.extra.get("context_id")
        seen.setdefault((s.task, s.level, str(cid)) if cid is not None else (s.key,), s)
    return list(seen.values())


def shared_of(sample: Sample) -> Shared:
    """The context and questions of a sample: `extra["turns"]` when it has them (the context is the prompt),
    else a `synthetic:passkey_k*` sample cut into its context and one question per name."""
    if "turns" in sample.extra:
        return _given_turns(sample)
    family, _, name = sample.task.partition("/")
    if family == "synthetic" and name in TASK_NAMES:
        return _passkey_k(sample)
    raise ValueError(f"{sample.task}: no questions sharing one context; a shared-context run takes samples with "
                     f"extra['turns'] or the tasks synthetic:{', synthetic:'.join(TASK_NAMES)}")


def _strip_turns(extra: dict[str, Any]) -> dict[str, Any]:
    """The sample's extra without its question list (and the scbench form's own question index): the record's
    `turn` and `extra["question"]` say which question it is."""
    return {k: v for k, v in extra.items() if k not in ("turns", "turn")}


class _Sample:
    """One sample's tokens, and the records of its turns as they are made."""

    def __init__(self, lo: Loaded, sample: Sample, settings: RunSettings, mode: str, history: str,
                 costs: CostModel) -> None:
        self.lo, self.sample, self.settings, self.mode, self.history, self.costs = \
            lo, sample, settings, mode, history, costs
        self.shared = shared_of(sample)
        tok = lo.tokenizer
        self.context_ids = tok.encode(self.shared.context)
        self.question_ids = [tok.encode(q.text, add_special_tokens=False) for q in self.shared.questions]
        if any(not ids for ids in self.question_ids):
            raise ValueError(f"{sample.key}: a question encodes to no tokens")
        self.gold_ids = [tok.encode(q.history, add_special_tokens=False) for q in self.shared.questions]
        self.max_new = settings.max_new_tokens if settings.max_new_tokens is not None else \
            (sample.max_new_tokens or DEFAULT_MAX_NEW)
        self.dims = _dims(lo.model)
        self.context_prefill_s: float | None = None

    def key(self, turn: int) -> str:
        return f"{self.sample.key}#t{turn}"

    def _ids(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor([ids], device=self.lo.device)

    def record(self, turn: int, seen_text: str, seen_ids: list[int], result_tokens: list[int], prefill_s: float,
               decode_s: float, bytes_before: int, bytes_after: int) -> SampleRecord:
        q = self.shared.questions[turn]
        n = len(seen_ids)
        record = SampleRecord(
            key=self.key(turn), task=self.sample.task, level=self.sample.level, id=self.sample.id,
            prompt_tokens_before=n, prompt_tokens=n, truncated=False, chat_template=False,
            max_new_tokens=self.max_new, answers=q.answers,
            extra={**_strip_turns(self.sample.extra), "question": q.text, "context_tokens": len(self.context_ids),
                   "history": self.history if self.mode == "multi-turn" else None,
                   "context_prefill_s": self.context_prefill_s},
            turn=turn, mode=self.mode, **record_hashes(seen_text, seen_ids, q.answers))
        record.bucket = bucket_of(record.to_dict())
        cost = self.costs.estimate(self.dims, n, chunk_size=self.lo.preset.chunk_size,
                                   dtype_bytes=torch.finfo(self.lo.dtype).bits // 8)
        record.flops_paper, record.flops_actual = cost.flops_model, cost.flops_model_actual
        record.flops_mixing_paper, record.flops_mixing_actual = cost.flops_mixing, cost.flops_mixing_actual
        record.cache_bytes_paper, record.cache_bytes_actual = cost.cache_bytes, cost.cache_bytes_actual
        record.params_extra = cost.params_extra
        prediction = self.lo.tokenizer.decode(result_tokens, skip_special_tokens=True)
        scored = score_detailed(q.scorer, prediction, q.answers, self.sample.extra)
        record.prediction, record.score, record.score_note = prediction, scored.score, scored.note
        record.n_generated, record.generated_ids = len(result_tokens), [int(t) for t in result_tokens]
        record.prefill_s, record.decode_s = prefill_s, decode_s
        record.decode_s_per_token = decode_s / max(1, len(result_tokens))
        record.cache_bytes_measured, record.cache_bytes_measured_final = bytes_before, bytes_after
        record.decode_batch = 1
        return record

    def _prefilled(self):
        lo = self.lo
        cache = lo.method.new_cache(lo.model)
        t0 = time.perf_counter()
        prefill(lo.model, lo.method, cache, self._ids(self.context_ids), lo.preset.chunk_size)
        self.context_prefill_s = time.perf_counter() - t0
        return cache

    def _turn(self, cache, turn: int, seen_text: str, seen_ids: list[int]) -> SampleRecord:
        lo = self.lo
        said = answer(lo.model, lo.method, cache, self._ids(self.question_ids[turn]), self.max_new,
                      lo.preset.chunk_size, repetition_penalty=self.settings.repetition_penalty)
        return self.record(turn, seen_text, seen_ids, said.tokens, said.prefill_s, said.decode_s,
                           said.cache_bytes_before, cache.nbytes())

    def turns(self, done: dict[int, dict[str, Any]]) -> Iterator[SampleRecord]:
        """The records of the turns not in `done` (turn -> its recorded line), in order."""
        lo, qs = self.lo, self.shared.questions
        todo = [i for i in range(len(qs)) if i not in done]
        if not todo:
            return
        if self.mode == "single":
            for i in todo:
                ids = self.context_ids + self.question_ids[i]
                result = generate(lo.model, lo.method, self._ids(ids), max_new_tokens=self.max_new,
                                  chunk_size=lo.preset.chunk_size, repetition_penalty=self.settings.repetition_penalty)
                self.context_prefill_s = None
                yield self.record(i, self.shared.context + qs[i].text, ids, result.tokens[0], result.prefill_s,
                                  result.decode_s, result.cache_bytes_after_prefill, result.cache_bytes_final)
            return
        base = self._prefilled()
        if self.mode == "multi-request":
            for i in todo:
                yield self._turn(snapshot(base), i, self.shared.context + qs[i].text,
                                 self.context_ids + self.question_ids[i])
            return
        # multi-turn: a recorded turn is replayed (its question, then its history answer) without decoding it
        seen_text, seen_ids = self.shared.context, list(self.context_ids)
        for i in range(len(qs)):
            if i in done:
                own = done[i].get("generated_ids") or []
            else:
                made = self._turn(snapshot(base), i, seen_text + qs[i].text, seen_ids + self.question_ids[i])
                yield made
                own = made.generated_ids or []
            if i + 1 == len(qs):
                break
            said_ids = self.gold_ids[i] if self.history == "gold" else list(own)
            said_text = qs[i].history if self.history == "gold" else lo.tokenizer.decode(own)
            extend(lo.model, lo.method, base, self._ids(self.question_ids[i]), lo.preset.chunk_size)
            if said_ids:
                extend(lo.model, lo.method, base, self._ids(said_ids), lo.preset.chunk_size)
            seen_text += qs[i].text + said_text
            seen_ids += self.question_ids[i] + said_ids


def _turn_of(key: str) -> tuple[str, int] | None:
    stem, sep, turn = key.rpartition("#t")
    return (stem, int(turn)) if sep and turn.isdigit() else None


def shared_manifest(preset: Preset, lo: Loaded, settings: RunSettings, samples: list[Sample], mode: str,
                    history: str) -> dict[str, Any]:
    """`harness run`'s manifest with the shared-context settings in its config (a different mode or history
    refuses to resume the folder)."""
    manifest = manifest_for(preset, lo, settings, samples)
    manifest["config"]["shared_context"] = {"mode": mode, "history": history if mode == "multi-turn" else None}
    manifest["config_hash"] = config_hash(manifest["config"])
    return manifest


def check_mode(mode: str, history: str) -> None:
    if mode not in MODES:
        raise ValueError(f"--shared-context must be one of {', '.join(MODES)}, got {mode!r}")
    if history not in HISTORIES:
        raise ValueError(f"--history must be one of {', '.join(HISTORIES)}, got {history!r}")


def run_shared_preset(preset: Preset, settings: RunSettings, out_dir: Path, mode: str, history: str = "gold",
                      sample_cache: dict | None = None) -> Path:
    """One preset's shared-context run into `out_dir` (resumed when it holds the same config)."""
    check_mode(mode, history)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--shared-context runs in one process (its turns share a cache); run it without torchrun")
    if settings.chat_template == "on" or settings.decode == "static":
        raise ValueError("--shared-context feeds the context and questions as raw text through the eager engine; "
                         "--chat-template on and --decode static do not apply (leave them at auto)")
    _, tasks = preset_tasks(preset, settings)
    with loaded(preset, settings.device, settings.dtype) as lo:
        samples = contexts(_load_samples_once(tasks, settings, lo.tokenizer, sample_cache))
        for s in samples:  # a task without questions fails here, before anything is written
            shared_of(s)
        store = RunStore.create_or_resume(out_dir, shared_manifest(preset, lo, settings, samples, mode, history))
        recorded: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        done = store.done_keys(retry_failed=settings.retry_failed)
        for rec in store.records():
            parsed = _turn_of(rec["key"])
            if parsed and rec["key"] in done:
                recorded[parsed[0]][parsed[1]] = rec
        costs = cost_model_of(lo.method)
        units = [_Sample(lo, s, settings, mode, history, costs) for s in samples]
        total = sum(len(u.shared.questions) for u in units)
        left = total - sum(len(recorded[u.sample.key]) for u in units)
        log.info("%s: %s, %d turn(s) to run, %d already in %s", preset.name, mode, left, total - left, out_dir)
        bar = tqdm(total=left, desc=f"{preset.name} {mode}", unit="turn", dynamic_ncols=True,
                   disable=tqdm_disable(settings.progress))
        with store:
            for unit in units:
                t0 = time.perf_counter()
                for record in unit.turns(recorded[unit.sample.key]):
                    record.wall_s = time.perf_counter() - t0
                    store.append(record.to_dict())
                    bar.update(1)
                    t0 = time.perf_counter()
        bar.close()
    write_summary(out_dir)
    write_turn_summary(out_dir)
    return out_dir


def run_shared_presets(presets: list[Preset], settings: RunSettings, mode: str, history: str = "gold") -> list[Path]:
    """Several presets into `settings.output/<preset>/` (the folder itself for one preset)."""
    cache: dict = {}
    return [run_shared_preset(p, settings, settings.output if len(presets) == 1 else settings.output / p.name,
                              mode, history, cache) for p in presets]


def turn_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean score (0-1) and sample count per (turn, bucket), plus each turn over all buckets (bucket `all`)."""
    cells: dict[tuple[int, str], list[float]] = defaultdict(list)
    for r in records:
        if r.get("status", "ok") != "ok" or not isinstance(r.get("score"), int | float) or r.get("turn") is None:
            continue
        for bucket in dict.fromkeys((r.get("bucket") or "all", "all")):
            cells[(r["turn"], bucket)].append(float(r["score"]))
    rows = [{"turn": t, "bucket": b, "score": sum(v) / len(v), "n": len(v)} for (t, b), v in cells.items()]
    order = {b: i for i, b in enumerate(sort_buckets({r["bucket"] for r in rows} - {"all"}))}
    return sorted(rows, key=lambda r: (r["turn"], order.get(r["bucket"], len(order))))


def write_turn_summary(run_dir: Path | str) -> tuple[Path, Path]:
    """`turns.json` and `turns.md` of a shared-context run: the score by turn index and length bucket."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    rows = turn_table(run.records)
    mode = {r.get("mode") for r in run.records} - {None}
    doc = {"mode": sorted(mode), "rows": rows,
           "note": "score: mean over the turn's scored records (0-1); n: their count; bucket all pools buckets"}
    out_json, out_md = run_dir / "turns.json", run_dir / "turns.md"
    write_atomic(out_json, json.dumps(doc, indent=1) + "\n")
    buckets = [b for b in dict.fromkeys(r["bucket"] for r in rows)]
    turns = sorted({r["turn"] for r in rows})
    cell = {(r["turn"], r["bucket"]): r for r in rows}
    lines = [f"# Score by turn ({', '.join(sorted(mode))}), x100 (n)", "",
             "| turn | " + " | ".join(buckets) + " |", "|---:|" + "---:|" * len(buckets)]
    for t in turns:
        lines.append(f"| {t + 1} | " + " | ".join(
            f"{100 * cell[(t, b)]['score']:.1f} ({cell[(t, b)]['n']})" if (t, b) in cell else "" for b in buckets)
            + " |")
    write_atomic(out_md, "\n".join(lines) + "\n")
    return out_json, out_md
