"""Turning a :class:`~tasks.sample.Sample` into the token ids a model is fed: truncation, then chat template.

The order matters and differs between benchmarks, and scores move with it, so each official order is
reproduced exactly (`docs/BENCHMARKS.md` A4, B4, C2, C3):

* LV-Eval (``middle``, style ``"lveval"``): tokenise the formatted prompt (default special tokens); if longer
  than ``L``, ``half = int(L/2)`` and the text becomes ``decode(ids[:half]) + decode(ids[-half:])``; then the
  chat template (one user message, generation prompt, no system message); then tokenise.
* InfiniteBench (``middle``, style ``"infinitebench"``), as the open-model scripts' ``truncate_by_tokens``:
  ``split = L // 2``; if longer than ``L``, keep ``ids[:split] + ids[-split:]`` (an odd ``L`` keeps ``L - 1``
  tokens); then, cut or not, decode with ``skip_special_tokens=True`` and re-tokenise that text. The round trip
  removes special-token strings that occur in the text (``<|endoftext|>`` in code_debug's sources) even when
  nothing is cut.
* AHN paper InfiniteBench / LongBench (``left``): if longer than ``max_tokens``, keep the last
  ``max_tokens - reserve`` tokens (``reserve`` = max_gen; the leading instruction is lost), then the chat
  template.

Whether to apply a chat template is always an explicit argument, never guessed from a model name (the
official AHN code's name test silently skipped the template for ``Qwen2.5``; `docs/DEFECTS.md` D4).
The tokenizer is duck-typed like a HF tokenizer (``encode``, ``decode``, ``apply_chat_template``), so this
module needs neither torch nor transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from tasks.sample import Sample

TruncationKind = Literal["middle", "left", "none"]
MiddleStyle = Literal["lveval", "infinitebench"]


@dataclass(frozen=True)
class Truncation:
    """How a formatted prompt is cut to fit.

    Truncation happens when the prompt has more than ``max_tokens`` tokens; the result then keeps
    ``max_tokens - reserve`` tokens (``reserve`` is the AHN/LongBench ``max_gen``; LV-Eval and InfiniteBench
    subtract nothing). ``style`` only matters for ``middle`` and selects the LV-Eval or InfiniteBench
    arithmetic and decoding (see the module docstring).
    """

    kind: TruncationKind = "none"
    max_tokens: int = 0
    reserve: int = 0
    style: MiddleStyle = "lveval"

    def __post_init__(self) -> None:
        if self.kind not in ("middle", "left", "none"):
            raise ValueError(f"unknown truncation kind {self.kind!r}; valid: 'middle', 'left', 'none'")
        if self.style not in ("lveval", "infinitebench"):
            raise ValueError(f"unknown middle-truncation style {self.style!r}; valid: 'lveval', 'infinitebench'")
        if self.kind != "none" and self.max_tokens - self.reserve <= 0:
            raise ValueError(
                f"truncation {self.kind!r} needs max_tokens > reserve (got {self.max_tokens}, {self.reserve})"
            )

    @property
    def budget(self) -> int:
        """Tokens kept when the prompt is truncated."""
        return self.max_tokens - self.reserve

    def to_dict(self) -> dict[str, Any]:
        """For the run manifest."""
        return {"kind": self.kind, "max_tokens": self.max_tokens, "reserve": self.reserve, "style": self.style}


NO_TRUNCATION = Truncation("none", 0)


def with_max_length(truncation: Truncation, max_length: int | None) -> Truncation:
    """``truncation`` with its budget set to ``max_length`` tokens (``run --max-length``; ``None`` keeps it); a
    task that truncates nothing is then middle-truncated the LV-Eval way."""
    if max_length is None:
        return truncation
    if truncation.kind == "none":
        return Truncation("middle", max_length)
    return replace(truncation, max_tokens=max_length)


class TaskSettings(NamedTuple):
    """A task's default way of being prompted: ``(truncation, chat_template, max_new_tokens)``."""

    truncation: Truncation
    chat_template: bool
    max_new_tokens: int


@dataclass(frozen=True)
class Prepared:
    """What the engine feeds, with the lengths the result line records."""

    input_ids: list[int]
    text: str
    prompt_tokens_before: int
    prompt_tokens_after: int
    truncated: bool


def _ids(encoded: Any) -> list[int]:
    """Token ids from whatever ``encode``/``apply_chat_template`` returned (list, dict or BatchEncoding)."""
    if isinstance(encoded, dict) or hasattr(encoded, "input_ids"):
        encoded = encoded["input_ids"]
    return list(encoded)


def encode(tokenizer: Any, text: str, add_special_tokens: bool = True) -> list[int]:
    """``tokenizer.encode`` as a plain list of ints."""
    return _ids(tokenizer.encode(text, add_special_tokens=add_special_tokens))


def apply_chat(tokenizer: Any, text: str, chat_template_kwargs: dict[str, Any] | None = None) -> str:
    """The prompt as one user turn with the generation prompt, no system message (`docs/AHN.md` §10.6)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "chat_template=True but the tokenizer has no chat template; pass chat_template=False for a base model"
        )
    out = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}],
        tokenize=False,
        add_generation_prompt=True,
        **(chat_template_kwargs or {}),
    )
    if not isinstance(out, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(out).__name__}, expected str")
    return out


def truncate_text(tokenizer: Any, text: str, truncation: Truncation) -> tuple[str, int, bool]:
    """Cut ``text`` per ``truncation`` at token level; returns (text, tokens before, truncated)."""
    text, n, truncated, _ = _truncate(tokenizer, text, truncation)
    return text, n, truncated


def _truncate(tokenizer: Any, text: str, truncation: Truncation) -> tuple[str, int, bool, list[int]]:
    """`truncate_text`, also returning token ids: when the text is not cut, those of the text returned (what an
    uncut prompt is fed as); when it is cut, those of the text given (whose length decided)."""
    ids = encode(tokenizer, text)
    n = len(ids)
    if truncation.kind == "middle" and truncation.style == "infinitebench" and n <= truncation.max_tokens:
        again = tokenizer.decode(ids, skip_special_tokens=True)  # the official round trip, even uncut
        return again, n, False, ids if again == text else encode(tokenizer, again)
    if truncation.kind == "none" or n <= truncation.max_tokens:
        return text, n, False, ids
    budget = truncation.budget
    if truncation.kind == "left":
        return tokenizer.decode(ids[-budget:], skip_special_tokens=True), n, True, ids
    if truncation.style == "lveval":
        half = int(budget / 2)
        head = tokenizer.decode(ids[:half], skip_special_tokens=True)
        tail = tokenizer.decode(ids[-half:], skip_special_tokens=True) if half else ""
        return head + tail, n, True, ids
    split = budget // 2
    kept = ids[:split] + ids[-split:] if split else []
    return tokenizer.decode(kept, skip_special_tokens=True), n, True, ids


def prepare(
    sample: Sample | str,
    tokenizer: Any,
    truncation: Truncation,
    chat_template: bool,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> Prepared:
    """Format → truncate → (chat template) → tokenise, in the benchmarks' official order.

    ``prompt_tokens_before`` counts the formatted prompt before truncation (default special tokens);
    ``prompt_tokens_after`` is ``len(input_ids)``, after the chat template. With a chat template the final
    text is tokenised without adding special tokens (the template writes its own, e.g. a BOS); without one,
    with the tokenizer's defaults, as the official scripts do.
    """
    prompt = sample.prompt if isinstance(sample, Sample) else sample
    text, before, truncated, whole = _truncate(tokenizer, prompt, truncation)
    if chat_template:
        text = apply_chat(tokenizer, text, chat_template_kwargs)
        ids = encode(tokenizer, text, add_special_tokens=False)
    else:  # an uncut prompt is fed as it was just encoded (a 128k-token prompt takes ~0.1 s to encode again)
        ids = whole if not truncated else encode(tokenizer, text)
    return Prepared(
        input_ids=ids, text=text, prompt_tokens_before=before, prompt_tokens_after=len(ids), truncated=truncated
    )
