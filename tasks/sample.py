"""The one record type that flows from benchmark adapters to the harness and the scorers.

Kept free of torch and of any tokenizer so that scoring and data preparation run anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One benchmark item, prompt filled but not truncated and not chat-templated.

    ``answers`` holds the references in the form the task's scorer takes (a list of strings for QA, the
    label list for InfiniteBench, ...); ``extra`` carries everything else a scorer or a report needs
    (keywords, options, needle depth, dataset revision, ...). Everything must be JSON-serialisable so
    a run folder can store samples and rescore them later.
    """

    task: str
    id: str
    level: str | None
    prompt: str
    answers: list[Any]
    language: str = "en"
    max_new_tokens: int = 64
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """The benchmark family, the part of ``task`` before the slash (``lveval``, ``infinitebench``...)."""
        return self.task.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The task name inside its family (``factrecall_en``, ``passkey``...)."""
        return self.task.split("/", 1)[-1]

    @property
    def key(self) -> str:
        """Unique key of the sample inside a run (``task|level|id``), as the result lines store it."""
        return f"{self.task}|{self.level or ''}|{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON lines."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so old files stay readable."""
        return cls(
            task=str(data["task"]),
            id=str(data["id"]),
            level=data.get("level"),
            prompt=data["prompt"],
            answers=list(data.get("answers") or []),
            language=data.get("language", "en"),
            max_new_tokens=int(data.get("max_new_tokens", 64)),
            extra=dict(data.get("extra") or {}),
        )
