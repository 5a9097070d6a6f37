"""SCBench's generated string-retrieval tasks (``kv``, ``prefix_suffix``, ``vt``), rebuilt offline, in SCBench's
record form (one shared ``context``, several ``multi_turns`` of ``input`` and ``answer``) and as harness samples.

``load("kv", [4096], 2, seed=0, tokenizer=tok)`` generates 2 records per length, each context prompt fitted to
at most 4096 tokens of ``tok`` (within 1 %; UTF-8 bytes without a tokenizer) by the synthetic tasks' machinery
(`tasks/synthetic/base.py`), every choice drawn with :class:`~tasks.realtext.draw.Draw` (sha256 of the seed,
task, length and index). :func:`read_records` reads SCBench-format JSON lines instead (``--data-dir`` holding
``scbench_<task>.jsonl``, as SCBench's Hugging Face files are named).

Every record becomes one :class:`~tasks.sample.Sample` per question (the single-question form ``harness run``
scores): ``prompt`` = the context prompt + ``"\\n\\n"`` + the question, as SCBench's ``multiturn_templates`` put
it. The shared-context form is in every sample's ``extra`` (`docs/SCBENCH.md`):

* ``extra["context_chars"]``: ``prompt[:context_chars]`` is the context prompt every question shares;
* ``extra["turns"]``: ``[{"input": question, "answers": [...]}, ...]`` in the order SCBench asks them;
* ``extra["turn"]``: this sample's index in ``turns``; ``extra["context_id"]`` names the record.

:func:`shared_contexts` groups samples back into :class:`SharedContext` objects, and :func:`turn_prompts` gives
SCBench's prompt list of either mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.realtext.draw import Draw
from tasks.sample import Sample
from tasks.synthetic.base import Generated, realise
from tasks.synthetic.lengths import CountTokens, count_bytes, level_label, token_counter

from .generate import CONTEXT_TEMPLATES, FOLLOW_UP_TEMPLATE, MAX_NEW_TOKENS, PLANS, QUESTION_SEPARATOR

FAMILY = "scbench"
TASKS: tuple[str, ...] = ("kv", "prefix_suffix", "vt")
DEFAULT_LENGTHS: tuple[int, ...] = (4096, 8192, 16384, 32768, 65536, 131072)
DEFAULT_N_PER_LENGTH = 20  # records (contexts) per length; each gives N_TURNS samples
N_TURNS = 5
MODES = ("multi-turn", "multi-request")


def check_task(name: str) -> None:
    if name not in TASKS:
        raise ValueError(f"unknown scbench task {name!r}; valid: {', '.join(TASKS)}")


def sample_key(seed: int, task: str, n_tokens: int, index: int) -> str:
    return f"scbench/{task}/{n_tokens}/{index}/{seed}"


def generate(name: str, n_tokens: int, index: int, seed: int = 0, count_tokens: CountTokens = count_bytes,
             n_turns: int = N_TURNS) -> tuple[Generated, list[int]]:
    """Record ``index`` of ``scbench/<name>`` whose context prompt has at most ``n_tokens`` tokens (within 1 %),
    and the character offsets in it of what each question asks for (``Built.needle_offsets``)."""
    check_task(name)
    plan = PLANS[name](Draw(sample_key(seed, name, n_tokens, index)), n_turns)
    gen = realise(name, plan, n_tokens, seed, count_tokens, tolerance=0.01)
    return gen, plan.build(gen.extra["units"], gen.extra["pad"]).needle_offsets


@dataclass(frozen=True)
class SharedContext:
    """One SCBench record: the context prompt and its questions, each with its reference answers."""

    context_id: str
    context: str
    turns: list[dict[str, Any]]  # [{"input": str, "answers": [str, ...]}, ...]


def to_samples(task: str, record: SharedContext, level: str | None, max_new_tokens: int,
               extra: dict[str, Any] | None = None, per_turn: list[dict[str, Any]] | None = None) -> list[Sample]:
    """One sample per question of ``record`` (the question appended to the shared context prompt)."""
    out = []
    for t, turn in enumerate(record.turns):
        info = {**(extra or {}), **(per_turn[t] if per_turn else {})}
        info.update(context_id=record.context_id, turn=t, n_turns=len(record.turns),
                    context_chars=len(record.context), turns=record.turns)
        out.append(Sample(
            task=f"{FAMILY}/{task}",
            id=f"{record.context_id}.{t}",
            level=level,
            prompt=record.context + QUESTION_SEPARATOR + turn["input"],
            answers=list(turn["answers"]),
            language="en",
            max_new_tokens=max_new_tokens,
            extra=info,
        ))
    return out


def _per_turn(flat: list[Any], n: int) -> list[list[Any]]:
    per = len(flat) // n  # vt: one offset per chain line; kv, prefix_suffix: one per question
    return [flat[t * per : (t + 1) * per] for t in range(n)]


def generated_samples(gen: Generated, char_offsets: list[int], index: int, counter: str) -> list[Sample]:
    """A generated record as samples, with where each question's answer sits in the context prompt (characters
    and tokens)."""
    turns = gen.extra["turns"]
    chars, tokens = _per_turn(char_offsets, len(turns)), _per_turn(gen.needle_token_offsets, len(turns))
    per_turn = [{"answer_char_offsets": c, "answer_token_offsets": k} for c, k in zip(chars, tokens, strict=True)]
    extra = {"origin": "generated", "data": {"origin": "generated", "generator": "tasks/scbench"},
             "n_tokens": gen.n_tokens, "context_tokens": gen.prompt_tokens,
             "seed": gen.seed, "token_counter": counter, "units": gen.extra["units"], "pad": gen.extra["pad"]}
    record = SharedContext(str(index), gen.prompt, turns)
    return to_samples(gen.name, record, level_label(gen.n_tokens), MAX_NEW_TOKENS[gen.name], extra, per_turn)


def load(name: str, lengths: list[int], n_per_length: int, seed: int = 0, tokenizer: Any | None = None,
         *, count_tokens: CountTokens | None = None, n_turns: int = N_TURNS) -> list[Sample]:
    """``n_per_length`` records of ``scbench/<name>`` at each length (their context prompts counted in
    ``tokenizer``'s tokens, else with ``count_tokens``, else in UTF-8 bytes), ``n_turns`` samples each."""
    check_task(name)
    if tokenizer is not None:
        counter, label = token_counter(tokenizer), type(tokenizer).__name__
    elif count_tokens is not None:
        counter, label = count_tokens, getattr(count_tokens, "__name__", "custom")
    else:
        counter, label = count_bytes, "bytes"
    out: list[Sample] = []
    for n in lengths:
        for i in range(n_per_length):
            gen, offsets = generate(name, n, i, seed, counter, n_turns)
            out.extend(generated_samples(gen, offsets, i, label))
    return out


# ------------------------------------------------------------------------------------ SCBench-format files


def data_file(data_dir: str | Path, name: str) -> Path:
    """Where an SCBench-format copy of task ``name`` lives: ``<data_dir>/scbench_<name>.jsonl``."""
    return Path(data_dir) / f"scbench_{name}.jsonl"


def _answers(value: Any, where: str) -> list[str]:
    """A turn's ``answer`` as a list of strings (``vt``'s is a list, the others' a string)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{where}: field 'answer' must be a string or a non-empty list of strings, "
                     f"got {type(value).__name__}")


def parse_record(name: str, rec: dict[str, Any], where: str, number: int) -> SharedContext:
    """One SCBench record (``context``, ``multi_turns`` of ``input``/``answer``, optional ``id``) as a
    :class:`SharedContext` whose context is SCBench's context prompt of task ``name``."""
    context = rec.get("context")
    if not isinstance(context, str) or not context:
        raise ValueError(f"{where}: field 'context' must be non-empty text, got {type(context).__name__}")
    raw = rec.get("multi_turns")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: field 'multi_turns' must be a non-empty list of "
                         f"{{\"input\": ..., \"answer\": ...}} objects")
    turns = []
    for t, turn in enumerate(raw):
        at = f"{where}: multi_turns[{t}]"
        if not isinstance(turn, dict):
            raise ValueError(f"{at}: must be an object with 'input' and 'answer', got {type(turn).__name__}")
        if not isinstance(turn.get("input"), str) or not turn["input"]:
            raise ValueError(f"{at}: field 'input' must be non-empty text")
        if "answer" not in turn:
            raise ValueError(f"{at}: field 'answer' is missing")
        turns.append({"input": turn["input"], "answers": _answers(turn["answer"], at)})
    rid = rec.get("id", number)
    return SharedContext(str(rid), CONTEXT_TEMPLATES[name].replace("{context}", context), turns)


def read_records(path: str | Path, name: str, limit: int | None = None) -> list[SharedContext]:
    """The first ``limit`` records of an SCBench-format JSON-lines file; a bad line or record is one error that
    names the file and line."""
    from tasks.jsonl import iter_objects

    check_task(name)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no SCBench file {path} (expected scbench_<task>.jsonl with 'context' and 'multi_turns')")
    records = [parse_record(name, rec, f"{path}:{number}", number)
               for number, rec in iter_objects(path, limit=limit)]
    if not records:
        raise ValueError(f"{path}: no records")
    return records


def file_samples(path: str | Path, name: str, limit: int | None = None) -> list[Sample]:
    """Samples of an SCBench-format file (no level: the file's contexts have the lengths they have)."""
    out: list[Sample] = []
    for rec in read_records(path, name, limit):
        out.extend(to_samples(name, rec, None, MAX_NEW_TOKENS[name],
                              {"origin": str(path), "data": {"origin": "local", "path": str(path)}}))
    return out


# ---------------------------------------------------------------------------------- the shared-context form


def shared_contexts(samples: list[Sample]) -> list[SharedContext]:
    """The records behind single-question samples, one per (task, level, context id), in first-seen order."""
    seen: dict[tuple[str, str | None, str], SharedContext] = {}
    for s in samples:
        key = (s.task, s.level, str(s.extra["context_id"]))
        if key not in seen:
            seen[key] = SharedContext(key[2], s.prompt[: s.extra["context_chars"]], list(s.extra["turns"]))
    return list(seen.values())


def turn_prompts(record: SharedContext, mode: str) -> list[str]:
    """SCBench's prompts of one record without a chat template.

    * ``multi-request`` (its ``create_scdq_prompt``): the context prompt, then each question on its own;
    * ``multi-turn`` (its ``create_multiturn_prompt``): the context prompt with the first question, then per
      later turn ``FOLLOW_UP_TEMPLATE`` with the previous turn's reference answer as ``pre_ans`` (formatted
      as SCBench formats it: a list answer appears as Python writes a list).
    """
    if mode == "multi-request":
        return [record.context] + [t["input"] for t in record.turns]
    if mode == "multi-turn":
        first = record.context + QUESTION_SEPARATOR + record.turns[0]["input"]
        rest = [FOLLOW_UP_TEMPLATE.format(pre_ans=_reference(record.turns[i - 1]["answers"]),
                                          input=record.turns[i]["input"]) for i in range(1, len(record.turns))]
        return [first] + rest
    raise ValueError(f"unknown shared-context mode {mode!r}; valid: {', '.join(MODES)}")


def _reference(answers: list[str]) -> Any:
    """The ``answer`` field SCBench stores: a string for one reference, the list for several (``vt``)."""
    return answers[0] if len(answers) == 1 else answers
