"""Training documents for the tiny byte-level LM: synthetic tasks with their answers, plus plain prose.

Every task document is a benchmark-style prompt followed by the reference completion and a newline, so a
model pretrained on the stream learns to retrieve across long contexts in exactly the format it is later
evaluated on. ``answer_start`` marks where the completion begins (for loss masks or for checks).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count

from . import INFINITEBENCH_TASKS, RULER_TASKS, TASKS, generate
from .filler import prose_haystack
from .lengths import CountTokens, count_bytes, fit_units

# the labelled pass keys (passkey_k*) are asked for by name: they are long at k = 16 and would crowd the mix
DEFAULT_TASKS: tuple[str, ...] = INFINITEBENCH_TASKS + RULER_TASKS + ("prose",)
ALL_TASKS: tuple[str, ...] = TASKS + ("prose",)


@dataclass(frozen=True)
class TrainingDoc:
    """One document: ``text[answer_start:]`` is the completion (``answer_start == len(text)`` for prose)."""

    text: str
    answer_start: int
    task: str
    n_tokens: int  # the length target it was drawn for


def _prose(seed: int, n_tokens: int, count_tokens: CountTokens) -> str:
    hay = prose_haystack(seed)
    units, _, _ = fit_units(
        lambda u, p: count_tokens(hay.text(u).rstrip()), n_tokens, min_units=1, tolerance=None
    )
    return hay.text(units).rstrip() + "\n"


def training_documents(
    seed: int,
    min_tokens: int,
    max_tokens: int,
    tasks: Sequence[str] = DEFAULT_TASKS,
    *,
    n_docs: int | None = None,
    weights: Sequence[float] | None = None,
    count_tokens: CountTokens | None = None,
) -> Iterator[TrainingDoc]:
    """A seeded stream (endless unless ``n_docs``) of documents with lengths uniform in the given range.

    ``tasks`` are synthetic task names plus ``"prose"`` (plain filler text), drawn with ``weights``
    (uniform by default). Needle depths are uniform in [0, 1]; RULER tasks alternate between the noise
    and the prose haystack for variety. A task whose bare template is longer than the drawn length gives
    its shortest prompt instead; a task with a long answer (math_calc) gets a shorter prompt so that the
    whole document stays near the drawn length.
    """
    if min_tokens < 1 or max_tokens < min_tokens:
        raise ValueError(f"need 1 <= min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
    for name in tasks:
        if name != "prose" and name not in TASKS:
            raise ValueError(f"unknown corpus task {name!r}; valid: {', '.join(ALL_TASKS)}")
    counter = count_tokens or count_bytes
    rng = random.Random(f"corpus/{seed}")
    for _ in count() if n_docs is None else range(n_docs):
        name = rng.choices(list(tasks), weights=weights)[0]
        n_tokens = rng.randint(min_tokens, max_tokens)
        depth = rng.random()
        doc_seed = rng.getrandbits(32)
        if name == "prose":
            text = _prose(doc_seed, n_tokens, counter)
            yield TrainingDoc(text=text, answer_start=len(text), task=name, n_tokens=n_tokens)
            continue
        options = {"haystack": rng.choice(("noise", "prose"))} if name.startswith("niah_") else {}
        gen = generate(name, n_tokens, depth, doc_seed, count_tokens=counter, tolerance=None, **options)
        total = gen.prompt_tokens + counter(gen.completion)
        if total > 1.05 * n_tokens and gen.prompt_tokens > n_tokens // 2:
            # a long answer (math_calc) would double the document: shrink the prompt once, proportionally
            target = max(1, n_tokens * gen.prompt_tokens // total)
            gen = generate(name, target, depth, doc_seed, count_tokens=counter, tolerance=None, **options)
        yield TrainingDoc(
            text=gen.prompt + gen.completion + "\n",
            answer_start=len(gen.prompt),
            task=name,
            n_tokens=n_tokens,
        )
