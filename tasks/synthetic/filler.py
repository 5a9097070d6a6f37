"""Haystacks: the irrelevant text that needles hide in, growable one word at a time.

Two kinds: InfiniteBench's repeated noise line (`docs/BENCHMARKS.md` B7, also RULER ``niah_single_1``) and a seeded prose
generator written for this project (RULER's Paul Graham essays cannot be shipped offline, and the tiny LM
needs some varied plain text to learn from). Both are cut into word *atoms* so a prompt can be sized to a
fraction of a percent, while needles are only ever inserted between whole *chunks* (a noise line, a prose
sentence), so they never split a sentence.
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Iterator

NOISE_LINE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n"

_ATOM = re.compile(r"\S+\s*|\s+")


class Haystack:
    """A lazily extended stream of chunks (lines or sentences), addressed by word atoms.

    ``sep`` is what must follow a needle so it stands as a chunk of its own (a newline for line-based
    haystacks, a space for prose).
    """

    def __init__(self, chunks: Iterator[str], sep: str, atom: re.Pattern[str] = _ATOM) -> None:
        self._chunks = chunks
        self.sep = sep
        self._atom = atom  # how a chunk is cut into atoms (words by default; a CJK text may cut per character)
        self._atoms: list[str] = []
        self._cum: list[int] = [0]  # _cum[i] = characters in atoms[:i]
        self._starts: list[int] = []  # atom indices where a chunk starts
        self._start_cum: list[int] = []  # character offsets of those starts

    def _extend(self, n_atoms: int) -> None:
        while len(self._atoms) < n_atoms:
            chunk = next(self._chunks)
            self._starts.append(len(self._atoms))
            self._start_cum.append(self._cum[-1])
            for atom in self._atom.findall(chunk):
                self._atoms.append(atom)
                self._cum.append(self._cum[-1] + len(atom))

    def text(self, n_atoms: int) -> str:
        """The first ``n_atoms`` atoms, joined."""
        self._extend(n_atoms)
        return "".join(self._atoms[:n_atoms])

    def context(self, n_atoms: int, needles: list[tuple[float, str]]) -> tuple[str, list[int], list[float]]:
        """The first ``n_atoms`` atoms with each ``(depth, text)`` needle inserted at a chunk boundary.

        A needle goes to the boundary whose share of the haystack characters before it is closest to
        ``depth``. Returns the text, each needle's character offset in it (in the order given) and the
        depth each needle really got (haystack characters before it / all haystack characters).
        """
        self._extend(n_atoms + 1)
        total = self._cum[n_atoms]
        # boundaries inside the first n_atoms atoms (the end counts only when it closes a chunk)
        n_bound = bisect.bisect_right(self._starts, n_atoms)
        placed: list[tuple[int, int, str]] = []  # (atom index, needle order, text)
        achieved: list[float] = []
        for order, (depth, text) in enumerate(needles):
            goal = min(max(depth, 0.0), 1.0) * total
            i = bisect.bisect_left(self._start_cum, goal, 0, n_bound)
            best = min(
                (j for j in (i - 1, i) if 0 <= j < n_bound),
                key=lambda j: (abs(self._start_cum[j] - goal), j),
            )
            atom = self._starts[best]
            placed.append((atom, order, text))
            achieved.append(self._cum[atom] / total if total else 0.0)
        placed.sort()
        pieces: list[str] = []
        offsets = [0] * len(needles)
        pos, prev = 0, 0
        for atom, order, text in placed:
            seg = "".join(self._atoms[prev:atom])
            pieces.append(seg)
            pos += len(seg)
            offsets[order] = pos
            pieces.append(text)
            pos += len(text)
            prev = atom
        pieces.append("".join(self._atoms[prev:n_atoms]))
        return "".join(pieces), offsets, achieved


def _repeat(line: str) -> Iterator[str]:
    while True:
        yield line


def noise_haystack() -> Haystack:
    """InfiniteBench's noise line repeated forever; needles go between lines."""
    return Haystack(_repeat(NOISE_LINE), sep="\n")


# A small, plain ASCII vocabulary written for this project: varied enough that a tiny byte-level LM sees
# real word statistics, small enough that it learns them quickly.
# fmt: off
NAMES = (
    "Anna", "Bram", "Cora", "Dirk", "Elsa", "Finn", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Lars",
    "Mira", "Nils", "Olga", "Paul", "Rosa", "Sven", "Tilda", "Ugo", "Vera", "Wim", "Yara", "Zeno",
)
NOUNS = (
    "apple", "basket", "boat", "bridge", "candle", "castle", "cloud", "coat", "door", "dog", "drum",
    "field", "garden", "hammer", "horse", "house", "island", "jar", "kettle", "lamp", "letter", "map",
    "mill", "mirror", "needle", "orchard", "pencil", "river", "road", "rope", "school", "ship", "shoe",
    "stone", "table", "tower", "tree", "wagon", "wall", "window",
)
ADJECTIVES = (
    "old", "new", "red", "blue", "green", "small", "large", "quiet", "loud", "bright", "dark", "warm",
    "cold", "heavy", "light", "round", "narrow", "wide", "busy", "calm", "clean", "dusty", "golden",
    "hidden", "lucky", "early", "late", "silver", "soft", "tall",
)
VERBS_PAST = (
    "carried", "found", "painted", "opened", "closed", "cleaned", "moved", "built", "sold", "bought",
    "watched", "fixed", "lost", "counted", "visited", "left", "shared", "named", "followed", "measured",
)
PLACES = (
    "market", "harbor", "village", "station", "forest", "valley", "library", "kitchen", "square",
    "meadow", "workshop", "bakery", "hill", "shore", "farm", "yard",
)
# fmt: on
TIMES = ("morning", "evening", "afternoon", "night", "spring", "summer", "autumn", "winter")


def _a(word: str) -> str:
    """``a word`` or ``an word``: the prose should be plain, correct English."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def _sentence(rng: random.Random) -> str:
    name, other = rng.sample(NAMES, 2)
    n1, n2 = rng.sample(NOUNS, 2)
    a1, a2 = rng.sample(ADJECTIVES, 2)
    verb = rng.choice(VERBS_PAST)
    place = rng.choice(PLACES)
    time = rng.choice(TIMES)
    form = rng.randrange(8)
    if form == 0:
        return f"{name} {verb} the {a1} {n1} near the {place}."
    if form == 1:
        return f"The {n1} by the {place} was {a1} and {a2}."
    if form == 2:
        return f"In the {time}, {name} walked to the {place} with {_a(a1)} {n1}."
    if form == 3:
        return f"{name} told {other} that the {n1} in the {place} was {a1}."
    if form == 4:
        return f"There were {rng.randint(2, 40)} {n1}s in the {a1} {place}."
    if form == 5:
        return f"Every {time} the {a1} {n1} stood next to the {n2}."
    if form == 6:
        return f"{name} and {other} {verb} {_a(n1)} and {_a(a2)} {n2}."
    return f"Nobody knew why the {n1} {verb} by {name} was so {a1}."


def prose_chunks(seed: int) -> Iterator[str]:
    """Endless seeded prose: sentences separated by spaces, paragraphs of 3 to 7 sentences by newlines."""
    rng = random.Random(f"prose/{seed}")
    while True:
        n = rng.randint(3, 7)
        for i in range(n):
            yield _sentence(rng) + ("\n" if i == n - 1 else " ")


def prose_haystack(seed: int) -> Haystack:
    """Seeded prose haystack; needles go between sentences."""
    return Haystack(prose_chunks(seed), sep=" ")


def prose_text(seed: int, n_atoms: int) -> str:
    """The first ``n_atoms`` words of the prose stream for ``seed`` (for plain-text training documents)."""
    return prose_haystack(seed).text(n_atoms)
