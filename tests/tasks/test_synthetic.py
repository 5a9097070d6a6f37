"""Synthetic generators: determinism, exact lengths, needle depths, and answers recoverable from the prompt.

Answers are recomputed here from the prompt text alone (parsing the JSON, evaluating the expression,
executing the generated code), independently of the generator's own bookkeeping.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import pytest

from tasks.prompts import INFINITEBENCH_OPEN_PROMPTS
from tasks.sample import Sample
from tasks.synthetic import (
    TASKS,
    LengthError,
    count_bytes,
    count_words,
    default_depths,
    generate,
    level_label,
    load,
)
from tasks.synthetic.filler import NOISE_LINE
from tasks.synthetic.multi_needle import TASK_NAMES as MULTI_PASSKEY
from tasks.synthetic.ruler import RULER_SHAPES

IB_TASKS = ("passkey", "number_string", "kv_retrieval", "math_find", "math_calc", "code_run")
# single-needle depth semantics; the labelled pass keys spread k needles over slots (tests/tasks/test_multi_needle.py)
NEEDLE_TASKS = tuple(t for t in TASKS if t != "math_calc" and t not in MULTI_PASSKEY)


def context_of(s: Sample) -> str:
    """The context part of the prompt, by the generator's recorded token (= byte) span."""
    raw = s.prompt.encode()
    return raw[s.extra["context_token_start"] : s.extra["context_token_end"]].decode()


# ---------------------------------------------------------------- API


def test_task_list_and_unknown_name():
    assert set(IB_TASKS) | set(RULER_SHAPES) | set(MULTI_PASSKEY) == set(TASKS)
    with pytest.raises(ValueError, match="nope.*passkey.*niah_multiquery"):
        load("nope", [1024], 1)


def test_level_labels():
    assert [level_label(n) for n in (1024, 2048, 4096, 16384, 131072)] == ["1k", "2k", "4k", "16k", "128k"]
    assert level_label(3072) == "3072"
    assert level_label(1000) == "1000"


def test_load_shape_ids_levels_and_default_depths():
    samples = load("passkey", [1024, 2048], 5, seed=3)
    assert len(samples) == 10
    assert {s.task for s in samples} == {"synthetic/passkey"}
    assert [s.level for s in samples] == ["1k"] * 5 + ["2k"] * 5
    assert len({(s.level, s.id) for s in samples}) == 10
    assert [s.extra["depth"] for s in samples[:5]] == default_depths(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    for s in samples:
        assert s.extra["n_tokens"] == int(s.extra["n_tokens"]) and s.language == "en"
        assert isinstance(s.extra["seed"], int) and isinstance(s.extra["needle_token_offset"], int)
        assert Sample.from_dict(json.loads(json.dumps(s.to_dict()))) == s  # JSON-serialisable


def test_explicit_depths_cycle():
    samples = load("niah_single", [2048], 4, depths=[0.1, 0.9])
    assert [s.extra["depth"] for s in samples] == [0.1, 0.9, 0.1, 0.9]


def test_sample_seed_reproduces_sample():
    s = load("kv_retrieval", [2048], 2, seed=11)[1]
    again = generate("kv_retrieval", 2048, depth=s.extra["depth"], seed=s.extra["seed"])
    assert again.prompt == s.prompt and again.answers == s.answers


def test_max_new_tokens():
    def mnt(name: str) -> int:
        return load(name, [2048], 1)[0].max_new_tokens

    assert mnt("passkey") == 6 and mnt("number_string") == 12 and mnt("kv_retrieval") == 50
    assert mnt("code_run") == 5
    for name in RULER_SHAPES:
        assert mnt(name) == 128
    calc = load("math_calc", [2048], 1)[0]
    assert calc.max_new_tokens == count_bytes(" " + str(calc.answers))
    median = [s for s in load("math_find", [2048], 7) if s.extra["subtype"] == "median"][0]
    assert median.max_new_tokens >= max(3, len(str(median.answers[0])))


def test_too_short_target_raises():
    with pytest.raises(LengthError):
        generate("passkey", 100)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_bytes_other_seed_other_bytes(name):
    a = load(name, [2048], 2, seed=5)
    b = load(name, [2048], 2, seed=5)
    c = load(name, [2048], 2, seed=6)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert [s.prompt for s in a] != [s.prompt for s in c]
    assert a[0].prompt != a[1].prompt


# ---------------------------------------------------------------- lengths


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize(
    "counter,lengths",
    [(count_bytes, (1024, 4096, 16384, 65536)), (count_words, (1024, 4096, 16384))],
    ids=["bytes", "words"],
)
def test_length_within_one_percent(name, counter, lengths):
    smallest = generate(name, 1, seed=1, count_tokens=counter, tolerance=None).prompt_tokens
    for n in lengths:
        if n < smallest:  # sixteen labelled pass keys need ~1.4k bytes: a shorter target is an error
            assert name in MULTI_PASSKEY, (name, n, smallest)
            with pytest.raises(LengthError, match="below the smallest prompt"):
                load(name, [n], 1, seed=1, depths=[0.3], count_tokens=counter)
            continue
        (s,) = load(name, [n], 1, seed=1, depths=[0.3], count_tokens=counter)
        got = counter(s.prompt)
        assert got == s.extra["prompt_tokens"]
        assert 0.99 * n <= got <= n, (name, n, got)
        assert s.prompt.isascii()


def test_tokenizer_argument_is_used():
    class WordPieces:
        """A stand-in tokenizer: words and punctuation marks."""

        def encode(self, text: str) -> list[str]:
            return re.findall(r"\w+|[^\w\s]", text)

    tok = WordPieces()
    for name in ("passkey", "kv_retrieval", "niah_multivalue"):
        (s,) = load(name, [3000], 1, tokenizer=tok)
        assert s.level == "3000"
        assert 0.99 * 3000 <= len(tok.encode(s.prompt)) <= 3000
        assert s.extra["token_counter"] == "WordPieces"


# ---------------------------------------------------------------- depths


@pytest.mark.parametrize("name", NEEDLE_TASKS)
def test_needle_depth_in_context(name):
    depths = [0.0, 0.25, 0.5, 0.75, 1.0]
    opts = {"subtype": "largest"} if name == "math_find" else {}
    for depth in depths:
        g = generate(name, 16384, depth=depth, seed=7, **opts)
        start, end = g.context_token_start, g.context_token_end
        assert start <= g.needle_token_offset < end
        assert abs(g.depth_achieved - depth) <= 0.01, (name, depth, g.depth_achieved)
        assert abs((g.needle_token_offset - start) / (end - start) - depth) <= 0.02
    # long prompts: the needle sits at that fraction of the whole prompt
    g = generate(name, 65536, depth=0.6, seed=7, **opts)
    assert abs(g.needle_token_offset / g.n_tokens - 0.6) <= 0.01


@pytest.mark.parametrize("name", ["niah_multikey", "niah_multivalue", "niah_multiquery"])
def test_multi_needles_are_spread(name):
    g = generate(name, 16384, depth=0.1, seed=2)
    got = g.extra["needle_depths"]
    want = [(0.1 + i / len(got)) % 1.0 for i in range(len(got))]
    assert len(got) == 4
    assert all(abs(a - b) <= 0.01 for a, b in zip(got, want))
    assert sorted(g.needle_token_offsets) == sorted(set(g.needle_token_offsets))


def test_needle_offset_points_at_needle():
    for name, head in [
        ("passkey", "The pass key is "),
        ("number_string", "The sequence of digits is "),
        ("niah_single", "One of the special magic numbers for "),
        ("code_run", "def func_"),
        ("kv_retrieval", '"'),
    ]:
        s = load(name, [4096], 1, depths=[0.4])[0]
        tail = s.prompt.encode()[s.extra["needle_token_offset"] :].decode()
        assert tail.startswith(head), name


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize("name", ["passkey", "number_string"])
def test_passkey_and_number_string_answers(name):
    for s in load(name, [1024, 8192], 4, seed=9):
        (key,) = s.answers
        assert isinstance(key, str) and key.isdigit() and len(key) == (5 if name == "passkey" else 10)
        ctx = context_of(s)
        noun = "pass key" if name == "passkey" else "sequence of digits"
        needle = f"The {noun} is {key}. Remember it. {key} is the {noun}.\n"
        assert ctx.count(needle) == 1
        assert ctx.replace(needle, "").replace(NOISE_LINE, "") in NOISE_LINE  # only noise besides
        template = INFINITEBENCH_OPEN_PROMPTS[name]
        assert s.prompt == template.format(context=ctx, input=s.extra["input"])
        if name == "number_string":  # five self-copies: at least one adjacent repeat
            assert any(a == b for a, b in zip(key, key[1:]))


def test_kv_answer_is_value_of_queried_key():
    for s in load("kv_retrieval", [1024, 8192], 3, seed=4):
        ctx = context_of(s)
        assert ctx.startswith("JSON data:\n{")
        data = json.loads(ctx[len("JSON data:\n") :])
        key = re.search(r'\nKey: "([0-9a-f-]+)"\n', s.prompt).group(1)
        assert data[key] == s.answers[0]
        assert len(set(data.values())) == len(data)
        assert s.prompt.endswith("The value associated with the specified key is: ")


def _kth(values: list[int], subtype: str):
    distinct = sorted(set(values))
    table = {
        "largest": distinct[-1],
        "second largest": distinct[-2],
        "third largest": distinct[-3],
        "smallest": distinct[0],
        "second smallest": distinct[1],
        "third smallest": distinct[2],
    }
    if subtype == "median":
        ordered = sorted(values)
        mid = len(ordered) // 2
        return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return table[subtype]


def test_math_find_answer_recomputed_from_list():
    samples = load("math_find", [1024, 4096], 7, seed=2)
    assert {s.extra["subtype"] for s in samples} == {
        "largest",
        "second largest",
        "third largest",
        "smallest",
        "second smallest",
        "third smallest",
        "median",
    }
    for s in samples:
        values = ast.literal_eval(context_of(s))
        subtype = re.search(r"The (.+) number of the list is: $", s.prompt).group(1)
        assert subtype == s.extra["subtype"]
        want = _kth(values, subtype)
        (got,) = s.answers
        assert got == want and type(got) is type(want)
        assert s.prompt.startswith(f"What is the {subtype} number in the following list?\n\n[")
        assert all(0 <= v <= 99 for v in values)


def test_math_calc_values_recomputed_by_evaluating_prefixes():
    for s in load("math_calc", [1024, 2048], 2, seed=8):
        expr = context_of(s)
        assert re.fullmatch(r"\d+( [+-] \d+)+", expr)
        parts = expr.split(" ")
        prefixes = [" ".join(parts[: 2 * i + 3]) for i in range(len(s.answers))]
        assert len(prefixes[-1]) == len(expr)
        assert [eval(p, {"__builtins__": {}}) for p in prefixes] == s.answers
        assert all(0 <= v <= 99 for v in s.answers)
        assert s.prompt.endswith(f"Expression: {expr}\nValues:")


def test_code_run_answer_recomputed_by_executing_code():
    for s in load("code_run", [1024, 8192], 5, seed=1):
        ctx = context_of(s)
        assert ctx.startswith("\nHere is the content of functions_module.py:\n\n")
        sandbox: dict = {"__builtins__": {}}
        code = ctx.split(":\n\n", 1)[1]
        exec(code, sandbox)  # generated one-line arithmetic functions only
        call = re.search(r"The value of (func_\d+)\((-?\d+)\) is$", s.prompt)
        assert sandbox[call.group(1)](int(call.group(2))) == s.answers[0]
        assert isinstance(s.answers[0], int)
        assert call.group(1) in s.prompt.split("\n")[0]  # "There is a function called func_N ..."
        # the chain is as deep as requested
        depth, name = 0, call.group(1)
        while name:
            depth += 1
            m = re.search(rf"def {name}\(x\):\n    return (func_\d+)?", ctx)
            name = m.group(1)
        assert depth == s.extra["levels"]


@pytest.mark.parametrize("name", list(RULER_SHAPES))
def test_ruler_values_present_and_wording(name):
    n_keys, n_values, n_queries = RULER_SHAPES[name]
    for s in load(name, [1024, 8192], 3, seed=5):
        ctx = context_of(s)
        needles = re.findall(r"One of the special magic numbers for ([a-z]+-[a-z]+) is: (\d{7})\.", ctx)
        assert len(needles) == n_keys * n_values
        assert len({k for k, _ in needles}) == n_keys
        assert len(s.answers) == n_values * n_queries
        queried = {k for k, v in needles if v in s.answers}
        assert len(queried) == n_queries
        for k in queried:
            assert k in s.prompt[-300:]  # named in the question
        if len(s.answers) == 1:
            assert s.prompt.startswith("A special magic number is hidden within the following text.")
            assert "What is the special magic number for" in s.prompt
            assert s.prompt.endswith(" mentioned in the provided text is")
        else:
            assert s.prompt.startswith("Some special magic numbers are hidden within the following text.")
            assert "What are all the special magic numbers for" in s.prompt
            assert s.prompt.endswith(" mentioned in the provided text are")


def test_ruler_prose_haystack():
    g = generate("niah_multiquery", 4096, depth=0.5, seed=1, haystack="prose")
    assert "The grass is green." not in g.prompt
    for v in g.answers:
        assert f"is: {v}." in g.prompt
    assert 0.99 * 4096 <= g.prompt_tokens <= 4096


def test_completion_scores_as_correct_answer():
    """The reference completion parses back to the label the way InfiniteBench's scorers read it."""
    for name in IB_TASKS:
        for s in load(name, [2048], 3, seed=12):
            g = generate(name, 2048, depth=s.extra["depth"], seed=s.extra["seed"], **_variant(s))
            assert g.prompt == s.prompt
            text = g.completion
            if name in ("passkey", "number_string"):
                assert re.split("[^0-9]", text.strip())[0] == s.answers[0]
            elif name == "kv_retrieval":
                assert text.split() == [s.answers[0]]
            elif name == "math_find":
                assert type(s.answers[0])(re.search(r"\d+\.\d+|\d+", text).group(0)) == s.answers[0]
            elif name == "math_calc":
                assert [int(x) for x in re.findall(r"\d+", text)] == s.answers
            else:
                assert int(text.split()[-1]) == s.answers[0]


def _variant(s: Sample) -> dict:
    if "subtype" in s.extra:
        return {"subtype": s.extra["subtype"]}
    if "levels" in s.extra:
        return {"levels": s.extra["levels"]}
    return {}


def test_scorer_accepts_reference_completion():
    scoring = pytest.importorskip("tasks.scoring")
    score = getattr(scoring, "score", None)
    if score is None:
        pytest.skip("tasks.scoring has no score() yet")
    for name in TASKS:
        (s,) = load(name, [2048], 1, seed=3, depths=[0.5])
        g = generate(name, 2048, depth=0.5, seed=s.extra["seed"], **_variant(s))
        try:
            got = score(s.task, g.completion, s)
        except (KeyError, ValueError, NotImplementedError):
            pytest.skip(f"no scorer registered for {s.task} yet")
        assert got == pytest.approx(1.0), name


def test_generators_never_import_torch():
    code = "import sys, tasks.synthetic, tasks.synthetic.corpus; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
