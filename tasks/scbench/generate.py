"""SCBench's string-retrieval tasks as length-independent plans: one shared context, several questions.

Each plan draws its choices once from a :class:`~tasks.realtext.draw.Draw` (sha256 only) and lays out the
*context prompt* (SCBench's template with ``{context}`` filled, before any question) at any size through
``build(units, pad)``, so `tasks/synthetic/base.py` can fit it to a token length. ``Built.answers`` and
``Built.extra["turns"]`` list the questions in the order they are asked; ``Built.needle_offsets`` are the
character offsets (in the context prompt) of what each question asks for, in the same order (for ``vt``, the
five lines of each chain, chain by chain).

* ``kv`` (Retr.KV): a JSON object of uuid4 key/value pairs (InfiniteBench's kv_retrieval context); each question
  gives one key, the answer is its value.
* ``prefix_suffix`` (Retr.Prefix-Suffix): a list of random strings, one a line; each question gives a prefix and a
  suffix that exactly one string of the list has, the answer is that string.
* ``vt`` (Retr.MultiHop): RULER's variable tracking (noise haystack, chains ``VAR A = 12345``, ``VAR B = VAR A``,
  ...); one chain per question, the answer is the chain's variables.
"""

from __future__ import annotations

import string
from collections.abc import Callable

from tasks.realtext.draw import Draw
from tasks.synthetic.base import Built, Plan, fill
from tasks.synthetic.filler import NOISE_LINE, noise_haystack
from tasks.synthetic.infinitebench_style import KV_INPUT

#: SCBench's context templates (``multiturn_templates_scdq`` of its ``eval_utils.py``): the part every question
#: shares. The single-question prompt is this plus ``"\n\n" + input`` (its ``multiturn_templates``).
CONTEXT_TEMPLATES: dict[str, str] = {
    "kv": "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}",
    "prefix_suffix": "{context}",
    "vt": "{context}",
}
QUESTION_SEPARATOR = "\n\n"
#: SCBench's follow-up template of a multi-turn conversation (``multiturn_follow_up_templates``).
FOLLOW_UP_TEMPLATE = "{pre_ans}\n\n{input}"
#: SCBench's generation budgets (``MAX_NEW_TOKENS`` of ``eval_utils.py``).
MAX_NEW_TOKENS: dict[str, int] = {"kv": 150, "prefix_suffix": 150, "vt": 30}

KV_HEAD = "JSON data:\n{"  # InfiniteBench's kv_retrieval context (docs/BENCHMARKS.md B7)
KV_QUESTION = KV_INPUT.lstrip("\n")  # 'Key: "<key>"\nThe value associated with the specified key is: '

PS_INSTRUCTION = (
    "Below is a list of strings, one per line. Memorize them: I will ask you to find strings by how they "
    "start and end.\n\n"
)
PS_QUESTION = (
    'Which string in the list above starts with "{prefix}" and ends with "{suffix}"? '
    "Answer with the whole string.\nAnswer:"
)
PS_ALPHABET = string.ascii_letters + string.digits
PS_AFFIX = 4  # characters of the prefix and of the suffix asked for
PS_LENGTHS = (12, 24)  # a string has 12 to 24 characters (inclusive)

# RULER's variable-tracking template and answer prefix (scripts/data/synthetic/constants.py), split into the
# shared context and the question as SCBench's "{context}\n\n{input}" template needs.
VT_INSTRUCTION = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
VT_QUESTION = (
    "Question: Find all variables that are assigned the value {query} in the text above. Answer: According to "
    "the chain(s) of variable assignment in the text above, {num_v} variables are assigned the value {query}, "
    "they are: "
)
VT_HOPS = 4  # RULER's default: a chain of 5 variables
VT_NAME_LETTERS = 5


def _uuid4(draw: Draw) -> str:
    """A version-4 UUID string from 128 drawn bits (the version and variant bits set as RFC 4122 says)."""
    n = (draw.bits64() << 64) | draw.bits64()
    n = (n & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)  # variant 10
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def whitespace_pad(n: int) -> str:
    """``n`` characters of alternating space and tab: JSON and line whitespace that a byte-level BPE tokenizer
    cannot merge into one token (a run of spaces or newlines becomes one or two tokens however long it is), so
    the pad can fine-tune a prompt's length by about one token per character pair."""
    return (" \t" * n)[:n]


def _depths(draw: Draw, n_turns: int) -> list[float]:
    """One depth per turn, evenly spread over (0, 1) with a drawn offset."""
    offset = draw.uniform()
    return [(t + offset) / n_turns for t in range(n_turns)]


def _positions(depths: list[float], units: int) -> list[int]:
    """Where each queried item goes among ``units`` distractors (0..units), as close to its depth as possible."""
    return [min(units, round(d * units)) for d in depths]


def _interleave(distractors: list[str], queried: list[str], positions: list[int]) -> tuple[list[str], list[int]]:
    """``distractors`` with ``queried[i]`` inserted before distractor ``positions[i]`` (ties in given order);
    returns the items and each queried item's index among them."""
    order = sorted(range(len(queried)), key=lambda i: (positions[i], i))
    items: list[str] = []
    where = [0] * len(queried)
    prev = 0
    for i in order:
        items.extend(distractors[prev : positions[i]])
        prev = positions[i]
        where[i] = len(items)
        items.append(queried[i])
    items.extend(distractors[prev:])
    return items, where


def kv(draw: Draw, n_turns: int) -> Plan:
    """Retr.KV: ``n_turns`` queried pairs at spread depths among ``units`` distractor pairs."""
    seen: set[str] = set()

    def fresh() -> str:
        while True:
            u = _uuid4(draw)
            if u not in seen:
                seen.add(u)
                return u

    asked = [(fresh(), fresh()) for _ in range(n_turns)]
    depths = _depths(draw, n_turns)
    order = draw.sample(range(n_turns), n_turns)  # the order the questions are asked in
    pool_draw = Draw(draw.key, "pool")
    pool: list[str] = []

    def item(k: str, v: str) -> str:
        return f'"{k}": "{v}"'

    def build(units: int, pad: int) -> Built:
        while len(pool) < units:
            a = _uuid4(pool_draw)
            b = _uuid4(pool_draw)
            if a not in seen and b not in seen and a != b:
                seen.update((a, b))
                pool.append(item(a, b))
        items, where = _interleave(pool[:units], [item(k, v) for k, v in asked], _positions(depths, units))
        starts = [len(KV_HEAD)]
        for it in items:
            starts.append(starts[-1] + len(it) + 2)
        ctx = KV_HEAD + ", ".join(items) + whitespace_pad(pad) + "}"
        prompt, begin = fill(CONTEXT_TEMPLATES["kv"], ctx)
        turns = [{"input": KV_QUESTION.format(key=asked[t][0]), "answers": [asked[t][1]]} for t in order]
        return Built(
            prompt=prompt,
            answers=[asked[t][1] for t in order],
            completion="",
            context_start=begin,
            context_end=begin + len(ctx),
            needle_offsets=[begin + starts[where[t]] for t in order],
            extra={"turns": turns, "keys": [asked[t][0] for t in order]},
        )

    return Plan(build=build, min_units=0, pad_max=2 * len(item(*asked[0])), depth=None)


def _random_string(draw: Draw) -> str:
    lo, hi = PS_LENGTHS
    n = lo + draw.below(hi - lo + 1)
    return "".join(PS_ALPHABET[draw.below(len(PS_ALPHABET))] for _ in range(n))


def _matches(s: str, prefix: str, suffix: str) -> bool:
    return s.startswith(prefix) and s.endswith(suffix)


def prefix_suffix(draw: Draw, n_turns: int) -> Plan:
    """Retr.Prefix-Suffix: ``n_turns`` asked strings at spread depths among ``units`` distractor strings; no
    other string of the list has an asked string's prefix and suffix."""
    asked: list[str] = []
    while len(asked) < n_turns:
        s = _random_string(draw)
        if all(not _matches(s, a[:PS_AFFIX], a[-PS_AFFIX:]) and not _matches(a, s[:PS_AFFIX], s[-PS_AFFIX:])
               for a in asked):
            asked.append(s)
    affixes = [(a[:PS_AFFIX], a[-PS_AFFIX:]) for a in asked]
    depths = _depths(draw, n_turns)
    order = draw.sample(range(n_turns), n_turns)
    pool_draw = Draw(draw.key, "pool")
    pool: list[str] = []

    def build(units: int, pad: int) -> Built:
        while len(pool) < units:
            s = _random_string(pool_draw)
            if not any(_matches(s, p, x) for p, x in affixes):  # rejection keeps every asked string unique
                pool.append(s)
        items, where = _interleave(pool[:units], asked, _positions(depths, units))
        starts = [len(PS_INSTRUCTION)]
        for it in items:
            starts.append(starts[-1] + len(it) + 1)
        ctx = PS_INSTRUCTION + "\n".join(items) + ("\n" + whitespace_pad(pad - 1) if pad else "")  # a blank line
        prompt, begin = fill(CONTEXT_TEMPLATES["prefix_suffix"], ctx)
        turns = [{"input": PS_QUESTION.format(prefix=affixes[t][0], suffix=affixes[t][1]), "answers": [asked[t]]}
                 for t in order]
        return Built(
            prompt=prompt,
            answers=[asked[t] for t in order],
            completion="",
            context_start=begin,
            context_end=begin + len(ctx),
            needle_offsets=[begin + starts[where[t]] for t in order],
            extra={"turns": turns},
        )

    return Plan(build=build, min_units=0, pad_max=4 * PS_LENGTHS[1], depth=None)


#: Text a variable name must not occur in (case-insensitively): string_match_all ignores case, so a name such as
#: ``GREEN`` would be found in a prediction that only echoes the noise.
_VT_FIXED_TEXT = (NOISE_LINE + VT_INSTRUCTION + VT_QUESTION).lower()


def vt(draw: Draw, n_turns: int) -> Plan:
    """Retr.MultiHop: one chain of ``VT_HOPS + 1`` variables per question, each chain's lines in order at
    sorted drawn depths in RULER's noise haystack."""
    names: list[str] = []
    while len(names) < n_turns * (VT_HOPS + 1):
        name = "".join(string.ascii_uppercase[draw.below(26)] for _ in range(VT_NAME_LETTERS))
        if name not in names and name.lower() not in _VT_FIXED_TEXT:
            names.append(name)
    values: list[str] = []
    while len(values) < n_turns:
        v = str(10000 + draw.below(89999))  # RULER: np.random.randint(10000, 99999)
        if v not in values:
            values.append(v)
    chains = [names[c * (VT_HOPS + 1) : (c + 1) * (VT_HOPS + 1)] for c in range(n_turns)]
    needles: list[tuple[float, str]] = []
    for c, chain in enumerate(chains):
        depths = sorted(draw.uniform() for _ in chain)
        lines = [f"VAR {chain[0]} = {values[c]}"] + [f"VAR {chain[h]} = VAR {chain[h - 1]}"
                                                   for h in range(1, len(chain))]
        needles += [(d, line + "\n") for d, line in zip(depths, lines)]
    order = draw.sample(range(n_turns), n_turns)
    hay = noise_haystack()

    def build(units: int, pad: int) -> Built:
        body, offsets, _ = hay.context(units, needles)
        ctx = VT_INSTRUCTION + body.rstrip(" ")
        prompt, begin = fill(CONTEXT_TEMPLATES["vt"], ctx)
        per = VT_HOPS + 1
        turns = [{"input": VT_QUESTION.format(query=values[t], num_v=per), "answers": list(chains[t])}
                 for t in order]
        return Built(
            prompt=prompt,
            answers=[list(chains[t]) for t in order],
            completion="",
            context_start=begin,
            context_end=begin + len(ctx),
            needle_offsets=[begin + len(VT_INSTRUCTION) + offsets[t * per + h] for t in order for h in range(per)],
            extra={"turns": turns, "values": [values[t] for t in order]},
        )

    return Plan(build=build, min_units=0, pad_max=0, depth=None)


PLANS: dict[str, Callable[[Draw, int], Plan]] = {"kv": kv, "prefix_suffix": prefix_suffix, "vt": vt}
