"""InfiniteBench's synthetic tasks (`docs/BENCHMARKS.md` B7), rebuilt at any length and needle depth.

The needle, noise, query and context strings are B7's; what changes is the size knob (noise words, JSON
pairs, list elements, functions instead of the fixed 128k counts) and that the needle depth is a parameter
rather than a sweep over the dataset. Prompts are the InfiniteBench open-model templates (`docs/BENCHMARKS.md` B3).
"""

from __future__ import annotations

import random
import re
import uuid

from ..prompts import INFINITEBENCH_OPEN_PROMPTS
from .base import Built, Plan, fill, sub_rng
from .filler import noise_haystack

PASSKEY_NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key.\n"
PASSKEY_INPUT = "What is the pass key?"
NUMBER_STRING_NEEDLE = "The sequence of digits is {key}. Remember it. {key} is the sequence of digits.\n"
NUMBER_STRING_INPUT = "What is the sequence of digits?"
KV_INPUT = '\nKey: "{key}"\nThe value associated with the specified key is: '
MATH_FIND_INPUT = "You should answer with only one number, no other words. The {what} number of the list is: "
MATH_FIND_SUBTYPES = (
    "largest",
    "second largest",
    "third largest",
    "smallest",
    "second smallest",
    "third smallest",
    "median",
)
MATH_CALC_INPUT = "The value of the numerical expression is: "  # B7; the open template does not show it
CODE_RUN_HEADER = "\nHere is the content of functions_module.py:\n\n"
CODE_RUN_INPUT = (
    "Please give me the exact number of the return value of func_{j}({x}). "
    "Your response should end with the sentence 'The return value is:'."
)
CODE_RUN_LEVELS = (2, 4, 6, 8, 10)


def _needle_in_noise(task: str, needle: str, question: str, key: str, depth: float) -> Plan:
    """passkey / number_string: one needle line among noise lines (B7's ``N*j + needle + N*(n-j)``)."""
    hay = noise_haystack()
    template = INFINITEBENCH_OPEN_PROMPTS[task]

    def build(units: int, pad: int) -> Built:
        ctx, offsets, achieved = hay.context(units, [(depth, needle)])
        ctx = ctx.rstrip(" ")  # a cut inside the last noise line must not leave a dangling space
        prompt, start = fill(template, ctx, input=question)
        return Built(
            prompt=prompt,
            answers=[key],
            completion=f" {key}",
            context_start=start,
            context_end=start + len(ctx),
            needle_offsets=[start + offsets[0]],
            depth_achieved=achieved[0],
            extra={"input": question},
        )

    return Plan(build=build, min_units=0, depth=depth)


def _digits(rng: random.Random, n: int) -> list[str]:
    return [str(rng.randint(0, 9)) for _ in range(n)]


def passkey(seed: int, depth: float) -> Plan:
    """Five uniform digits (leading zeros allowed) hidden in noise."""
    key = "".join(_digits(random.Random(seed), 5))
    return _needle_in_noise("passkey", PASSKEY_NEEDLE.format(key=key), PASSKEY_INPUT, key, depth)


def number_string(seed: int, depth: float) -> Plan:
    """Ten digits with adjacent repeats: five uniform digits, then five self-copies at uniform places."""
    rng = random.Random(seed)
    digits = _digits(rng, 5)
    for _ in range(5):
        p = rng.randint(0, len(digits) - 1)
        digits.insert(p, digits[p])
    key = "".join(digits)
    return _needle_in_noise(
        "number_string", NUMBER_STRING_NEEDLE.format(key=key), NUMBER_STRING_INPUT, key, depth
    )


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _kv_item(key: str, value: str) -> str:
    return f'"{key}": "{value}"'


def kv_retrieval(seed: int, depth: float) -> Plan:
    """A JSON object of uuid4 pairs; the queried pair sits at ``depth`` among ``units`` distractor pairs.

    Spaces before the closing brace (still valid JSON) fine-tune the length below one pair (~80 bytes).
    """
    rng = random.Random(seed)
    key, value = _uuid(rng), _uuid(rng)
    pool_rng = sub_rng(seed, "kv_retrieval/pairs")
    pool: list[tuple[str, str]] = []
    seen = {key, value}
    question = KV_INPUT.format(key=key)
    template = INFINITEBENCH_OPEN_PROMPTS["kv_retrieval"]
    head = "JSON data:\n{"

    def build(units: int, pad: int) -> Built:
        while len(pool) < units:
            a, b = _uuid(pool_rng), _uuid(pool_rng)
            if a not in seen and b not in seen and a != b:
                seen.update((a, b))
                pool.append((a, b))
        idx = round(depth * units)
        items = [_kv_item(a, b) for a, b in pool[:units]]
        items.insert(idx, _kv_item(key, value))
        ctx = head + ", ".join(items) + " " * pad + "}"
        needle = len(head) + sum(len(it) + 2 for it in items[:idx])
        prompt, start = fill(template, ctx, input=question)
        return Built(
            prompt=prompt,
            answers=[value],
            completion=value,
            context_start=start,
            context_end=start + len(ctx),
            needle_offsets=[start + needle],
            depth_achieved=idx / units if units else 0.0,
            extra={"input": question, "key": key},
        )

    return Plan(build=build, min_units=1, pad_max=len(_kv_item(key, value)) + 2, depth=depth)


def math_find_answer(values: list[int], subtype: str) -> int | float:
    """k-th largest/smallest *distinct* value, or the median (always a float, as InfiniteBench labels it)."""
    if subtype == "median":
        s = sorted(values)
        n = len(s)
        return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    rank = {"largest": 0, "second largest": 1, "third largest": 2}.get(subtype)
    if rank is not None:
        return sorted(set(values), reverse=True)[rank]
    rank = {"smallest": 0, "second smallest": 1, "third smallest": 2}[subtype]
    return sorted(set(values))[rank]


def math_find_prefix(question: str) -> str:
    """The template's ``{prefix}`` as InfiniteBench derives it from the input (`docs/BENCHMARKS.md` B3)."""
    m = re.search(r"The .+ of", question)
    what = m.group(0).lower()[: -len(" of")] if m else "the number"
    return f"What is {what} in the following list?"


def math_find(seed: int, depth: float, subtype: str | None = None) -> Plan:
    """A Python list of small ints; one occurrence of the answer value is moved to ``depth``.

    The move keeps the multiset (so the answer) unchanged. A median of two different middle values occurs
    nowhere in the list; such samples have no needle.
    """
    rng = random.Random(seed)
    if subtype is None:
        subtype = rng.choice(MATH_FIND_SUBTYPES)
    if subtype not in MATH_FIND_SUBTYPES:
        raise ValueError(f"unknown math_find subtype {subtype!r}; valid: {', '.join(MATH_FIND_SUBTYPES)}")
    family = subtype.split()[-1] if subtype != "median" else rng.choice(("largest", "smallest"))
    lo, hi = (0, rng.randint(79, 99)) if family == "largest" else (rng.randint(0, 19), 99)
    stream = sub_rng(seed, "math_find/values")
    drawn: list[int] = []
    question = MATH_FIND_INPUT.format(what=subtype)
    template = INFINITEBENCH_OPEN_PROMPTS["math_find"]
    prefix = math_find_prefix(question)

    def build(units: int, pad: int) -> Built:
        while len(drawn) < units:
            drawn.append(stream.randint(lo, hi))
        values = drawn[:units]
        answer = math_find_answer(values, subtype)
        pos = round(depth * (units - 1))
        needles: list[int] = []
        achieved = None
        if float(answer).is_integer() and int(answer) in values:
            j = values.index(int(answer))
            values[j], values[pos] = values[pos], values[j]
            achieved = pos / (units - 1)
        ctx = "[" + ", ".join(map(str, values)) + "]"
        prompt, start = fill(template, ctx, prefix=prefix, input=question)
        if achieved is not None:
            needles = [start + 1 + sum(len(str(v)) + 2 for v in values[:pos])]
        return Built(
            prompt=prompt,
            answers=[answer],
            completion=str(answer),
            context_start=start,
            context_end=start + len(ctx),
            needle_offsets=needles,
            depth_achieved=achieved,
            extra={"input": question, "subtype": subtype, "range": [lo, hi]},
        )

    return Plan(build=build, min_units=20, depth=depth)


def math_calc(seed: int, depth: float | None = None) -> Plan:
    """A running +/- expression kept inside [0, 99]; the answer is every value after each operation.

    There is no needle: ``depth`` is ignored (recorded as ``None``).
    """
    rng = sub_rng(seed, "math_calc/terms")
    first = rng.randint(0, 99)
    terms: list[str] = []
    values: list[int] = []
    template = INFINITEBENCH_OPEN_PROMPTS["math_calc"]

    def build(units: int, pad: int) -> Built:
        while len(terms) < units - 1:
            v = values[-1] if values else first
            x = rng.randint(0, 99)
            if rng.random() < 0.5:
                if v + x > 99:
                    x = rng.randint(0, 99 - v)
                terms.append(f" + {x}")
                values.append(v + x)
            else:
                if v - x < 0:
                    x = rng.randint(0, v)
                terms.append(f" - {x}")
                values.append(v - x)
        ctx = str(first) + "".join(terms[: units - 1])
        answer = values[: units - 1]
        prompt, start = fill(template, ctx)
        return Built(
            prompt=prompt,
            answers=list(answer),
            completion=" " + str(answer),
            context_start=start,
            context_end=start + len(ctx),
            extra={"input": MATH_CALC_INPUT},
        )

    return Plan(build=build, min_units=2, depth=None)


def code_run(seed: int, depth: float, levels: int | None = None) -> Plan:
    """Chains of one-line functions over ``levels`` levels; the queried level-0 function sits at ``depth``.

    ``units`` is the number of functions (level sizes differ by at most one). Extra blank lines between
    functions fine-tune the length below one function.
    """
    rng = random.Random(seed)
    if levels is None:
        levels = rng.choice(CODE_RUN_LEVELS)
    x = rng.randint(-10, 10)
    template = INFINITEBENCH_OPEN_PROMPTS["code_run"]

    adds_rng = sub_rng(seed, "code_run/offsets")
    adds: list[int] = []

    def build(units: int, pad: int) -> Built:
        # Function slot i lives on level i % levels and adds adds[i]; both are the same at every size, so
        # one more function changes the text by about one function (the length search relies on it).
        # Which ids the slots get and whom they call is drawn afresh for every size.
        while len(adds) < units:
            adds.append(adds_rng.randint(-12, 17))
        r = sub_rng(seed, f"code_run/{units}")
        ids = r.sample(range(1, 2 * units + 1), units)
        # the function at the requested depth of the sorted file gets a level-0 slot: it is the query
        j = sorted(ids)[round(depth * (units - 1))]
        slot = ids.index(j)
        if slot % levels:
            other = levels * r.randrange((units - 1) // levels + 1)
            ids[slot], ids[other] = ids[other], ids[slot]
        groups = [ids[level::levels] for level in range(levels)]
        calls: dict[int, tuple[int | None, int]] = {}
        for i, t in enumerate(ids):
            level = i % levels
            callee = r.choice(groups[level + 1]) if level < levels - 1 else None
            calls[t] = (callee, adds[i])
        defs: dict[int, str] = {}
        for t, (callee, a) in calls.items():
            expr = f"func_{callee}(x)" if callee is not None else "x"
            if a > 0:
                expr += f" + {a}"
            elif a < 0:
                expr += f" - {-a}"
            defs[t] = f"def func_{t}(x):\n    return {expr}\n\n"
        order = sorted(defs)
        offsets: dict[int, int] = {}
        total = 0
        for t in order:
            offsets[t] = total
            total += len(defs[t])
        answer, t = x, j
        while t is not None:
            callee, a = calls[t]
            answer += a
            t = callee
        code = "".join(defs[t] for t in order)
        # the pad becomes extra blank lines spread evenly between functions (PEP 8 spacing, not a tail)
        gaps = [(i + 1) * pad // units - i * pad // units for i in range(units)]
        padded = "".join(defs[t] + "\n" * g for t, g in zip(order, gaps))
        ctx = CODE_RUN_HEADER + padded
        question = CODE_RUN_INPUT.format(j=j, x=x)
        call = re.search(r"func_[0-9]+\(\-?[0-9]+\)", question)
        assert call is not None
        func_call = call.group(0)
        prompt, start = fill(template, ctx, func=func_call.split("(")[0], func_call=func_call)
        return Built(
            prompt=prompt,
            answers=[answer],
            completion=f" {answer}",
            context_start=start,
            context_end=start + len(ctx),
            needle_offsets=[start + len(CODE_RUN_HEADER) + padded.index(f"def func_{j}(x):")],
            depth_achieved=offsets[j] / max(1, total - len(defs[j])),
            extra={"input": question, "levels": levels, "func_call": func_call, "code_chars": len(code)},
        )

    return Plan(build=build, min_units=levels, pad_max=64, depth=depth)
