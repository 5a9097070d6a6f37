"""The per-sample result record: one line of `samples.jsonl`, defined once.

`harness run` builds a `SampleRecord` for every sample and writes `to_dict()`; a failed sample carries every key
too (what was not measured is None). Readers index the loaded lines by these field names, and a test holds
every name they read to this definition. The field table of `docs/ARCHITECTURE.md` is generated from it
(`field_table()`), and a test fails if the two disagree. Lines written before a field existed load with its
default (`from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _f(meaning: str, default: Any = None) -> Any:
    """A field with its meaning (for the docs table) and its default for lines written before it existed."""
    return field(default=default, metadata={"meaning": meaning})


@dataclass
class SampleRecord:
    """What one sample gave: identity, prompt, costs, outcome, times. The order of fields is the order of keys."""

    key: str = _f("unique within a run: `task|level|id`", "")
    task: str = _f("`family/name` of the benchmark task", "")
    level: str | None = _f("the task's level (LV-Eval `16k`…, synthetic length label) or None")
    id: str = _f("the sample's id, unique within task and level", "")
    prompt_tokens_before: int | None = _f("prompt tokens before truncation")
    prompt_tokens: int | None = _f("prompt tokens fed to the model (after truncation and chat template)")
    truncated: bool | None = _f("whether truncation cut the prompt")
    chat_template: bool | None = _f("whether the chat template was applied")
    max_new_tokens: int | None = _f("generation budget used")
    answers: Any = _f("the references, in the form the task's scorer takes")
    extra: dict[str, Any] = field(default_factory=dict, metadata={"meaning": "the sample's `extra` (keywords, "
                                                                             "options, needle depth, …)"})
    bucket: str | None = _f("length bucket of the report (the level, or a bin of `prompt_tokens_before`)")
    flops_paper: int | None = _f("model FLOPs of the prefill, paper convention")
    flops_actual: int | None = _f("model FLOPs of the prefill as this implementation runs it")
    flops_mixing_paper: int | None = _f("token-mixing FLOPs, paper convention")
    flops_mixing_actual: int | None = _f("token-mixing FLOPs as run")
    cache_bytes_paper: int | None = _f("cache bytes after the prefill, paper convention (4 B/element)")
    cache_bytes_actual: int | None = _f("cache bytes after the prefill by this implementation's cost model")
    params_extra: int | None = _f("parameters the method adds")
    status: str = _f("`ok` or `failed`", "ok")
    error: str | None = _f("why a failed sample failed")
    prediction: str | None = _f("the generated text")
    score: float | None = _f("the official-parity score in [0, 1] (None when failed)")
    score_note: str | None = _f("why the scorer gave 0 where the official code would have raised")
    n_generated: int | None = _f("tokens generated")
    generated_ids: list[int] | None = _f("the generated token ids, in order (they show differences the text can "
                                         "hide: ids the tokenizer decodes to nothing)")
    prefill_s: float | None = _f("prefill seconds")
    decode_s: float | None = _f("decode seconds")
    decode_s_per_token: float | None = _f("decode seconds per generated token")
    peak_mem_bytes: int | None = _f("peak accelerator memory (None on CPU)")
    cache_bytes_measured: int | None = _f("bytes of the live cache after the prefill")
    cache_bytes_measured_final: int | None = _f("bytes of the live cache after the last decoded token")
    decode_batch: int | None = _f("requests decoded together with this one (1: alone; None for older runs)")
    prompt_sha256: str | None = _f("sha256 of the prompt text (None for runs older than the field)")
    input_ids_sha256: str | None = _f("sha256 of the token ids fed (None for runs older than the field)")
    answers_sha256: str | None = _f("sha256 of the references (None for runs older than the field)")
    wall_s: float | None = _f("wall seconds of the whole sample")
    turn: int | None = _f("shared-context runs: the question's index (0-based) on the one context; None otherwise")
    mode: str | None = _f("shared-context runs: `single`, `multi-request` or `multi-turn` (harness/shared_runner.py)")

    def fail(self, error: str) -> SampleRecord:
        """Mark the sample failed: no prediction and no score; every other key stays."""
        self.status, self.error, self.prediction, self.score = "failed", error, None, None
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON line's object, every field present."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleRecord:
        """A record from a stored line; fields the line lacks take their defaults, unknown keys are an error."""
        known = field_names()
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown sample-record field(s) {', '.join(unknown)}; valid: {', '.join(known)}")
        return cls(**data)


def field_names() -> tuple[str, ...]:
    """Every field of the record, in key order."""
    return tuple(f.name for f in fields(SampleRecord))


def field_table() -> str:
    """The markdown table of the fields and their meanings (what `docs/ARCHITECTURE.md` shows)."""
    rows = ["| field | meaning |", "|---|---|"]
    rows += [f"| `{f.name}` | {f.metadata['meaning']} |" for f in fields(SampleRecord)]
    return "\n".join(rows)
