"""The real-text tasks: frozen sources, deterministic samples, needles where the records say, and the scorers.

Samples are generated with the project's byte-level tokenizer (tokens = UTF-8 bytes, so every property can be
checked by counting bytes) and, when the real Qwen2.5 tokenizer is on this machine, with it too.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tasks import realtext as rt
from tasks.byte_tokenizer import build_byte_tokenizer
from tasks.prompts import LVEVAL_DATASET_PROMPT
from tasks.realtext import code_qa, factrecall, haystacks, sources
from tasks.realtext.counting import PIECE_BREAK, PieceCounter
from tasks.realtext.draw import Draw, spread_depth
from tasks.registry import data_provenance, load_samples, task_settings
from tasks.sample import Sample
from tasks.scoring.realtext import code_value_match, score_realtext
from tasks.synthetic.lengths import token_counter
from tests.real_model import real_model_dir

REPO = Path(__file__).resolve().parents[2]
QWEN_DIR = real_model_dir()  # the real model's local copy (tests/real_model.py), or None


def digest(samples: list[Sample]) -> str:
    """sha256 over the samples' prompts and answers (what a model sees and what it is scored against)."""
    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps([s.key, s.prompt, s.answers], ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


@pytest.fixture(scope="module")
def byte_tok():
    return build_byte_tokenizer()


@pytest.fixture(scope="module")
def qwen_tok():
    if QWEN_DIR is None:
        pytest.skip("no real Qwen2.5 tokenizer: make the local copy (python -m harness fetch-model "
                    "qwen2.5-coder-0.5b) or set AHN_HARNESS_QWEN_DIR to a model folder")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(QWEN_DIR))


# ------------------------------------------------------------------------------------------------ determinism

# sha256 of (key, prompt, answers) of samples 0..2 at each length, generated with the byte-level tokenizer and
# seed 0; the same on every machine and Python version (a change here changes every reported score).
BYTE_HASHES = {
    ("niah_single", 1024): "a65f17fb92169aafb4ebf093c143c0b2c5df6c1d496f1f1191c3e9c7bf4a34ca",
    ("niah_single", 4096): "c14afac8b50e350b7462a969a50403be4b2f3fd39d4cf415f65e15197a854911",
    ("niah_multikey", 4096): "0e51dedf8c4a4c479de315a7a9608f7bed9c50d202fb7aa284082c19ca91f15a",
    ("factrecall_en", 4096): "0989838d2a50095640284f8c771b5dbe81ec4647b932b043a0b71a9d9cc6fd04",
    ("factrecall_zh", 4096): "e572b20caf29449cbad6a5ff1cb52242623cb818c2f30163b877e8ad20c217e3",
    ("code_default", 4096): "38a958b2db2d4a8ba64ffccad113b09abb159b839907283b2fded6d41f829e66",
    ("code_default", 16384): "b857a4e50dafd8d3b3a500d349aab84fa1340f1d7165d982fd54d36165249b38",
}
QWEN_HASHES = {
    ("niah_single", 4096): "343a675429287f4b3ecab10a1abfba939205cc03308fbebd4f1eab8ba3f7b2c5",
    ("niah_multikey", 4096): "995f0b34dadbacd210bd8e14d381f1683c0032a040eee33794e22c765bbeea55",
    ("factrecall_en", 4096): "01f2dcfcf9f4250c870e283ff32f7ef2810c2987e4ed7d6e8f09004edcb92579",
    ("factrecall_zh", 4096): "8d714343de69be39c5e2dc706f841ef1c214770de139dcb2a59c33521ada6a25",
    ("code_default", 4096): "1af00cce02a2849cc56e086023b991b22bcab8b5a3c1f1b6ef7d570b1434009e",
}


@pytest.mark.parametrize(("task", "n_tokens"), list(BYTE_HASHES))
def test_samples_match_committed_hashes_byte_tokenizer(byte_tok, task, n_tokens):
    assert digest(rt.load(task, [n_tokens], 3, seed=0, tokenizer=byte_tok)) == BYTE_HASHES[(task, n_tokens)]


@pytest.mark.parametrize(("task", "n_tokens"), list(QWEN_HASHES))
def test_samples_match_committed_hashes_qwen_tokenizer(qwen_tok, task, n_tokens):
    assert digest(rt.load(task, [n_tokens], 3, seed=0, tokenizer=qwen_tok)) == QWEN_HASHES[(task, n_tokens)]


def test_seed_changes_the_samples_and_the_byte_counter_equals_the_byte_tokenizer(byte_tok):
    a = rt.load("niah_single", [2048], 2, seed=0)
    assert digest(a) == digest(rt.load("niah_single", [2048], 2, seed=0, tokenizer=byte_tok))
    assert digest(a) != digest(rt.load("niah_single", [2048], 2, seed=1))
    # a sample does not depend on how many are drawn
    assert rt.load("niah_single", [2048], 1, seed=0)[0] == a[0]


def test_draw_is_sha256_of_key_and_counter():
    d = Draw("a", 1)
    first = int.from_bytes(hashlib.sha256(b"a/1#0").digest()[:8], "big")
    second = int.from_bytes(hashlib.sha256(b"a/1#1").digest()[:8], "big")
    assert d.bits64() == first and d.bits64() == second
    assert Draw("a", 1).below(1000) == first % 1000  # 2**64 - 2**64 % 1000 > first: accepted at once
    picks = Draw("s").sample(range(10), 10)
    assert sorted(picks) == list(range(10))
    assert [spread_depth(i) for i in range(7)] == [0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]


# ------------------------------------------------------------------------------ properties from first principles

LEVELS = (1024, 4096, 16384)


def _check_length_and_needle(s: Sample, needle: str, n_tokens: int) -> None:
    """Tokens are bytes: the prompt fits the level within 1 %, and the recorded token offset is where the
    needle's bytes start."""
    data = s.prompt.encode("utf-8")
    assert 0.99 * n_tokens <= len(data) <= n_tokens == s.extra["n_tokens"]
    assert s.extra["prompt_tokens"] == len(data)
    assert s.prompt.count(needle) == 1
    offset = s.extra["needle_token_offset"]
    assert data[offset:].startswith(needle.encode("utf-8"))
    assert s.extra["needle_tokens_from_end"] == len(data) - offset
    assert s.extra["beyond_window"] == (len(data) - offset > 128 + 3968)
    assert s.level == {1024: "1k", 4096: "4k", 16384: "16k", 32768: "32k"}[n_tokens]


@pytest.mark.parametrize("n_tokens", LEVELS)
def test_niah_needles_keys_and_depths(n_tokens):
    for task, n_keys in (("niah_single", 1), ("niah_multikey", 4)):
        for i, s in enumerate(rt.load(task, [n_tokens], 4)):
            keys, values = s.extra["keys"], s.extra["values"]
            assert len(set(keys)) == len(set(values)) == n_keys and s.answers == [values[0]]
            needle = f"One of the special magic numbers for {keys[0]} is: {values[0]}."
            _check_length_and_needle(s, needle, n_tokens)
            assert s.prompt.endswith(f"The special magic number for {keys[0]} mentioned in the provided text is")
            assert f"What is the special magic number for {keys[0]} mentioned in the provided text?" in s.prompt
            for k, v in zip(keys[1:], values[1:]):
                assert s.prompt.count(f"One of the special magic numbers for {k} is: {v}.") == 1
            assert s.extra["depth"] == spread_depth(i)
            # the needle's share of the haystack text before it is the requested depth, to within a paragraph
            # (a 1k haystack has only a few paragraph boundaries)
            if n_tokens >= 4096:
                assert abs(s.extra["depth_achieved"] - spread_depth(i)) < 0.1


def test_depths_spread_and_most_needles_beyond_the_window_at_32k():
    samples = rt.load("niah_single", [32768], 8)
    assert sorted(s.extra["depth"] for s in samples) == [i / 16 for i in (1, 2, 4, 6, 8, 10, 12, 14)]
    longest = max(len(c) for c in haystacks.english_chunks())
    for s in samples:  # the needle lands at the chunk boundary nearest the requested depth
        assert abs(s.extra["depth_achieved"] - s.extra["depth"]) <= longest / 2 / (0.95 * 32768)
        # and in tokens (bytes) too: the template is < 1 % of the prompt
        assert abs(s.extra["needle_depth_tokens"] - s.extra["depth"]) < 0.03
    assert sum(s.extra["beyond_window"] for s in samples) >= 7  # depth 0.875 is 4k tokens from the end


@pytest.mark.parametrize("task", ["factrecall_en", "factrecall_zh"])
def test_factrecall_official_prompt_fact_and_confusing_facts(task):
    lang = factrecall.LANGUAGE[task]
    head, tail = LVEVAL_DATASET_PROMPT[task].split("{context}")
    for s in rt.load(task, [4096], 3):
        assert s.prompt.startswith(head)
        assert s.prompt.endswith(tail.format(input=factrecall.QUESTION[lang]))
        _check_length_and_needle(s, factrecall.FACT[lang], 4096)
        for cf in factrecall.CONFUSING_FACTS[lang]:
            assert s.prompt.count(cf) == 1
        assert s.answers == [factrecall.ANSWER[lang]] and s.language == lang and s.max_new_tokens == 16
        assert score_realtext(task, factrecall.ANSWER[lang], s.answers, s.extra) == 1.0


@pytest.mark.parametrize("n_tokens", [4096, 16384])
def test_code_default_answer_is_what_ast_says(n_tokens):
    for s in rt.load("code_default", [n_tokens], 4):
        path, function, param = s.extra["path"], s.extra["function"], s.extra["param"]
        text = sources.read_text(path)
        fns = [n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == function]
        assert len(fns) == 1
        a = fns[0].args
        pos = a.posonlyargs + a.args
        defaults = dict(zip([p.arg for p in pos][len(pos) - len(a.defaults):], a.defaults))
        defaults.update({p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None})
        assert s.answers == [ast.get_source_segment(text, defaults[param])]
        # the function's own source, under its file's header, is in the prompt once, where the record says
        source = ast.get_source_segment(text, fns[0])
        _check_length_and_needle(s, f"# File: {path}\n{source}", n_tokens)
        assert f"In the file {path}, what is the default value of the parameter `{param}` of the function " \
               f"`{function}`?" in s.prompt


def test_code_candidates_are_unique_top_level_functions():
    cands = code_qa.candidates()
    assert len(cands) >= 50
    trees = {name: ast.parse(sources.read_text(name)) for name in {c.file for c in cands}}
    for c in cands:
        fn = next(n for n in trees[c.file].body if isinstance(n, ast.FunctionDef) and n.name == c.function)
        params = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
        default = dict(zip([p.arg for p in params], [None] * (len(params) - len(fn.args.defaults) -
                       len(fn.args.kwonlyargs)) + fn.args.defaults + fn.args.kw_defaults))[c.param]
        assert ast.get_source_segment(sources.read_text(c.file), default) == c.default
        assert c.default not in {"None", "True", "False"} and len(c.default) <= 40
        seg = haystacks.code_segments()[c.segment]
        assert seg.file == c.file and f"def {c.function}(" in seg.text


def test_code_segments_rebuild_every_file():
    by_file: dict[str, str] = {}
    for seg in haystacks.code_segments():
        by_file[seg.file] = by_file.get(seg.file, "") + seg.text
    assert set(by_file) == {s.name for s in sources.sources("code")}
    for name, text in by_file.items():
        assert text == sources.read_text(name)


def test_tokenizer_counts_the_real_tokenizer(qwen_tok):
    exact = token_counter(qwen_tok)
    for task in rt.TASKS:
        s = rt.load(task, [4096], 1, tokenizer=qwen_tok)[0]
        # fitted with piecewise counts, the sample is the one whole-prompt counts give
        assert rt.to_sample(rt.generate(task, 4096, 0, 0, exact), 0, "Qwen2Tokenizer").prompt == s.prompt
        n = len(qwen_tok.encode(s.prompt))
        assert 0.99 * 4096 <= n <= 4096 == s.extra["n_tokens"] and s.extra["prompt_tokens"] == n
        assert len(qwen_tok.encode(s.prompt[: s.prompt.index(_needle_text(s))])) == s.extra["needle_token_offset"]


def test_piece_counter_sums_pieces_and_falls_back_when_a_tokenizer_is_not_additive(caplog):
    with_bos = PieceCounter(lambda t: len(t.encode("utf-8")) + 1)  # one special token per encode
    text = "first paragraph\n\nsecond\n\n  indented\n\nthird"
    assert with_bos.special == 1
    assert with_bos(text) == len(text.encode("utf-8")) + 1
    assert PIECE_BREAK.split(text) == ["first paragraph\n\n", "second\n\n  indented\n\n", "third"]

    def joined(t: str) -> int:  # a "tokenizer" that merges a blank line with the next word: not additive
        return len(t) - t.count("\n\nOne")

    plain = rt.generate("niah_single", 2048, 0, 0, joined)
    with caplog.at_level("WARNING", logger="tasks.realtext"):
        fast = rt.generate("niah_single", 2048, 0, 0, joined, PieceCounter(joined))
    assert (fast.prompt, fast.prompt_tokens) == (plain.prompt, plain.prompt_tokens)
    assert "\n\nOne" in fast.prompt and "disagrees with the tokenizer" in caplog.text


def _needle_text(s: Sample) -> str:
    if s.name.startswith("niah"):
        return f"One of the special magic numbers for {s.extra['keys'][0]}"
    if s.name.startswith("factrecall"):
        return factrecall.FACT[s.language]
    return f"# File: {s.extra['path']}\ndef {s.extra['function']}("


# ----------------------------------------------------------------------------------------------------- sources


def test_every_shipped_source_verifies_and_the_lists_for_training_data():
    for src in sources.sources():
        assert len(sources.read_text(src.name).encode("utf-8")) == src.size
    names = sources.eval_source_names()
    assert {"json/decoder.py", "pydoc_data/topics.py", "common-licenses/GPL-3", "fortunes-zh/chinese"} <= names
    hashes = sources.eval_source_hashes()
    assert len(hashes) == len(names) and all(len(h) == 64 for h in hashes)
    assert hashlib.sha256((REPO / "tasks/realtext/data/LICENSE-PSF.txt").read_bytes()).hexdigest()
    total = sum(p.stat().st_size for p in (REPO / "tasks/realtext/data").rglob("*"))
    assert total < 1_500_000


def _copy_data(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(sources.DATA_DIR, dst)
    return dst


def test_tampered_source_is_a_clear_error(tmp_path):
    import lzma

    data = _copy_data(tmp_path)
    path = data / sources.get_source("json/decoder.py").file
    raw = bytearray(lzma.decompress(path.read_bytes()))
    raw[100] ^= 1
    path.write_bytes(lzma.compress(bytes(raw)))
    with pytest.raises(sources.SourceError, match=r"'json/decoder.py' .* does not match its manifest"):
        sources.read_text("json/decoder.py", data)
    path.write_bytes(path.read_bytes()[:-10])  # truncated: no longer an xz stream
    sources._read.cache_clear()
    with pytest.raises(sources.SourceError, match=r"'json/decoder.py' is corrupt"):
        sources.read_text("json/decoder.py", data)


def test_missing_source_is_a_clear_error_from_load(tmp_path, monkeypatch):
    data = _copy_data(tmp_path)
    (data / sources.get_source("common-licenses/GPL-2").file).unlink()
    monkeypatch.setattr(sources, "DATA_DIR", data)
    haystacks.english_chunks.cache_clear()
    try:
        with pytest.raises(sources.SourceError, match=r"'common-licenses/GPL-2' is missing: no file"):
            rt.load("niah_single", [1024], 1)
    finally:
        haystacks.english_chunks.cache_clear()
    with pytest.raises(sources.SourceError, match="unknown real-text source 'nope'; valid: "):
        sources.read_text("nope")
    (data / "MANIFEST.json").unlink()
    sources._manifest.cache_clear()
    with pytest.raises(sources.SourceError, match="manifest .* is missing"):
        sources.sources(data_dir=data)


# ----------------------------------------------------------------------------------------------------- scorers


@pytest.mark.parametrize(("prediction", "reference", "expected"), [
    ("'rb'", "'rb'", 1.0),
    ('"rb"', "'rb'", 1.0),  # the same string literal
    (" `3`.\nmore text", "3", 1.0),
    ("\n\n  0.6\n", "0.6", 1.0),
    ("3.0", "3", 0.0),  # a float is not the int default
    ("The default is 3", "3", 0.0),
    ("_colwidth", "_colwidth", 1.0),
    ("colwidth", "_colwidth", 0.0),
    ("re.compile(r\"\\s*(?:#\\s*)?$\").match", "re.compile(r\"\\s*(?:#\\s*)?$\").match", 1.0),
    ("", "''", 0.0),
    ("''", "''", 1.0),
    # an answer stated in a sentence: the LAST code span of the first non-empty line is the value
    ("The default value of the parameter `mode` of the function `which` is `os.F_OK | os.X_OK`.",
     "os.F_OK | os.X_OK", 1.0),
    ("The default value of the parameter `function` of the function `copytree` is `copy2`.", "copy2", 1.0),
    ("The default value of `mode` is `\"rb\"`.", "'rb'", 1.0),  # a literal in other quotes
    ("The default is os.F_OK | os.X_OK for the parameter `mode`.", "os.F_OK | os.X_OK", 0.0),  # last: the name
    ("The default value of the parameter `sep` of the function `join` is an empty string.", "''", 0.0),
    ("an empty string", "''", 0.0),
    ("It is `copy2`, not `copy`.", "copy2", 0.0),  # one candidate, the last span: listing values cannot win
    ("The default is 3.\nIt is `3`.", "3", 0.0),  # only the first non-empty line is read
    ("The value is ``a`b``.", "a`b", 1.0),  # a span delimited by two backticks holds one
])
def test_code_value_match_hand_cases(prediction, reference, expected):
    assert code_value_match(prediction, reference) == expected


def test_scorers_of_each_task_hand_cases():
    assert score_realtext("niah_single", "The number is 1234567.", ["1234567"], {}) == 1.0
    assert score_realtext("niah_multikey", "It is 7654321", ["1234567"], {}) == 0.0
    # LV-Eval's test vectors for qa_f1_score / qa_f1_zh_score (docs/BENCHMARKS.md A7)
    en = ["Ludwig Beethoven"]
    assert score_realtext("factrecall_en", "Ludwig Beethoven.", en, {}) == 1.0
    assert score_realtext("factrecall_en", "David Beckham.", en, {}) == 0.0
    assert score_realtext("factrecall_en", "The scientist is Ludwig Beethoven, who developed E=mc2.", en, {}) \
        == pytest.approx(2 * (2 / 7) * 1.0 / (2 / 7 + 1.0))  # 2 of 7 tokens, both references: 0.444...
    assert score_realtext("factrecall_zh", "贝多芬。", ["贝多芬"], {}) == 1.0
    assert score_realtext("factrecall_zh", "贝克汉姆。", ["贝多芬"], {}) == 0.0
    assert score_realtext("code_default", "'utf-8'", ['"utf-8"'], {}) == 1.0
    with pytest.raises(ValueError, match="not a realtext task"):
        score_realtext("passkey", "1", ["1"], {})


# ------------------------------------------------------------------------------------------------ the family


def test_family_selection_levels_and_settings():
    got = load_samples("realtext:niah_single@1k+2k", limit=2)
    assert [(s.task, s.level, s.id) for s in got] == [("realtext/niah_single", lv, i)
                                                      for lv in ("1k", "2k") for i in ("0", "1")]
    provenance = data_provenance(got)["realtext/niah_single"]
    assert provenance == [{"origin": "tasks/realtext/data",
                           "sources": {s.name: s.sha256 for s in sources.sources("prose_en")}}]
    settings = task_settings("realtext/factrecall_zh")
    assert settings.truncation.kind == "none" and settings.chat_template is False and settings.max_new_tokens == 16
    with pytest.raises(ValueError, match="bad length"):
        load_samples("realtext:niah_single@4q", limit=1)
    with pytest.raises(ValueError, match="unknown realtext task 'nope'; valid: niah_single"):
        load_samples("realtext:nope@1k", limit=1)


def test_family_runs_through_the_harness_on_the_tiny_world(tmp_path):
    if not (REPO / "leaderboards" / "tiny" / "base" / "config.json").exists():
        pytest.skip("the tiny world is not committed in this checkout")
    from harness.cli import main

    out = tmp_path / "rt-run"  # in this process: the command line's own code, without a second interpreter
    assert main(["run", "--model", "tiny-full,tiny-swa", "--tasks",
                 "realtext:niah_single@1k,realtext:factrecall_zh@1k,realtext:code_default@1k", "--limit", "1",
                 "--output", str(out), "--no-progress"]) == 0
    for model in ("tiny-full", "tiny-swa"):
        records = [json.loads(line) for line in (out / model / "samples.jsonl").read_text().splitlines()]
        assert sorted(r["task"] for r in records) == ["realtext/code_default", "realtext/factrecall_zh",
                                                      "realtext/niah_single"]
        assert all(isinstance(r["score"], float) and r["extra"]["needle_token_offset"] > 0 for r in records)


def test_worker_processes_make_the_same_samples(monkeypatch):
    """A large load is generated by forked workers; the samples equal the ones made in this process."""
    tok = build_byte_tokenizer()
    assert rt.generation_workers(10) == 1  # a small load stays in this process
    serial = rt.load("niah_multikey", [1500, 2500], 2, seed=3, tokenizer=tok)
    pools = []
    real_pool = rt.ProcessPoolExecutor

    def spy(*args, **kwargs):
        pools.append(args[0])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(rt, "ProcessPoolExecutor", spy)
    monkeypatch.setattr(rt, "generation_workers", lambda total: 2)
    parallel = rt.load("niah_multikey", [1500, 2500], 2, seed=3, tokenizer=tok)
    assert pools == [2] and len(serial) == 4
    assert parallel == serial
