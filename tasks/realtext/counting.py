"""Counting the tokens of a long prompt from cached counts of its paragraphs.

Fitting a prompt to a token length measures it a couple of dozen times (`tasks/synthetic/lengths.py`), and a
128k-token prompt takes about a second to encode, so whole-prompt counting costs ~30 s a sample. A byte-level
BPE tokenizer such as Qwen2.5's first cuts text into pre-tokens with a regular expression that never joins the
newlines ending a paragraph to the word that starts the next one, so the prompt's count is the sum of the
counts of its pieces cut after each blank line (``"\\n\\n"`` followed by a non-space), less the special tokens
added once per encode. :class:`PieceCounter` keeps the pieces' counts, so each measurement encodes only the
pieces it has not seen (the end of the prompt). It is exact for such tokenizers, and :func:`checked` verifies it
against whole-prompt counts before a sample is used.
"""

from __future__ import annotations

import re

from tasks.synthetic.lengths import CountTokens

PIECE_BREAK = re.compile(r"(?<=\n\n)(?=\S)")


class PieceCounter:
    """A token counter that sums cached counts of the pieces of a text (see the module docstring)."""

    def __init__(self, count: CountTokens) -> None:
        self.count = count
        self.special = count("")  # tokens any encode adds (a BOS), counted once per text
        self._cache: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        total = self.special
        for piece in PIECE_BREAK.split(text):
            n = self._cache.get(piece)
            if n is None:
                n = self._cache[piece] = self.count(piece) - self.special
            total += n
        return total
