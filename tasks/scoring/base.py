"""Result type and the small coercions every scorer shares.

Scorers are faithful to the official scripts, including their crashes: where the official code would raise
(division by zero, ``int()`` of a decimal, an empty ROUGE hypothesis...), ours raises :class:`OfficialRaise`
internally and the registry turns it into a score of 0 with a note, so one strange prediction never stops a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoreResult:
    """One sample's score in [0, 1]; ``note`` says why it is 0 when the official code would have raised."""

    score: float
    note: str | None = None

    def __float__(self) -> float:
        return self.score


class OfficialRaise(Exception):  # noqa: N818 (it is a signal, not an error of ours)
    """The official scorer would have raised here; the sample scores 0 and the message becomes the note."""


def require_text(value: Any, what: str = "prediction") -> str:
    """Return ``value`` if it is a string; the official scripts call string methods on it and crash otherwise."""
    if isinstance(value, str):
        return value
    raise OfficialRaise(f"{what} is not a string ({type(value).__name__}); the official scorer would raise")


def as_list(answers: Any) -> list[Any]:
    """References as a list: a bare string or number becomes a one-element list.

    Deliberate deviation: the official loops would iterate over a bare string's characters; every real
    file stores lists (or a scalar label that the task then unwraps), so wrapping is what was meant.
    """
    if isinstance(answers, list):
        return answers
    if isinstance(answers, tuple):
        return list(answers)
    if answers is None:
        return []
    return [answers]
