"""A benchmark family added the way docs/ADDING_A_BENCHMARK.md says: one file, one registration line.

"recall": a word is hidden in a context, the model is asked for it. Records are read from
``<data_dir>/recall/<name>.jsonl`` with fields ``id``, ``context``, ``question``, ``answer``; the score is 1 when
the answer word is the first word of the prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.family import BenchmarkFamily, LoadRequest, TaskInfo, read_jsonl, register_family
from tasks.prompting import NO_TRUNCATION, TaskSettings
from tasks.sample import Sample

NAMES = ("words",)
PROMPT = "{context}\n\nQuestion: {question}\nAnswer:"
MAX_NEW_TOKENS = 8


def load(request: LoadRequest) -> list[Sample]:
    if request.data_dir is None:
        raise ValueError("recall reads its records from --data-dir (<data_dir>/recall/<name>.jsonl)")
    samples = []
    for name in request.names or NAMES:
        for rec in read_jsonl(Path(request.data_dir) / "recall" / f"{name}.jsonl", request.limit):
            samples.append(Sample(task=f"recall/{name}", id=str(rec["id"]), level=None,
                                  prompt=PROMPT.format(**rec), answers=[rec["answer"]],
                                  max_new_tokens=MAX_NEW_TOKENS))
    return samples


def first_word(prediction: Any, answers: list[str], extra: dict[str, Any]) -> float:
    words = str(prediction).strip().split()
    return float(bool(words) and words[0].strip(".,") == answers[0])


register_family(BenchmarkFamily(
    name="recall",
    names=lambda: NAMES,
    load=load,
    settings=lambda rest, sample: TaskSettings(NO_TRUNCATION, False, MAX_NEW_TOKENS),
    tasks=lambda: {f"recall/{n}": TaskInfo(f"recall/{n}", "first word == answer", "en", first_word) for n in NAMES},
    description="a hidden word, asked back",
))
