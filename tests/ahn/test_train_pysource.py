"""The Python-source training corpus: content-addressed, deterministic, packed, and disjoint from the evaluation."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import types

import pytest

from ahn.train.data import DataError
from ahn.train.pysource import Exclusions, PythonSourceCorpus, eval_exclusions, list_files

ROOTS = ["site:ahn"]  # this repository's own package: a small, fixed root every checkout has


class ByteTokenizer:
    """Bytes as ids, 256 = end of text: an independent, exact tokenizer (token count = byte count)."""

    eos_token_id = 256

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode("utf-8"))


NONE = Exclusions(frozenset(), frozenset())


def _corpus(rows: int = 8, **kw) -> PythonSourceCorpus:
    args = {"roots": ROOTS, "min_tokens": 2000, "exclusions": NONE} | kw
    return PythonSourceCorpus(ByteTokenizer(), 1024, rows, **args)


def test_rows_are_the_files_bytes_in_the_manifest_order():
    c = _corpus()
    assert c.rows.shape == (8, 1024)
    files = {f.label: f.path for f in list_files(ROOTS)}
    stream: list[int] = []
    for entry in c.files:  # the manifest names every file in order, with the hash of its bytes
        data = files[entry["path"]].read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["tokens"] == len(data) + 1 and len(data) > 2000
        stream += list(data) + [256]
    assert c.rows.flatten().tolist() == stream[: 8 * 1024]
    assert sum(e["tokens"] for e in c.files[:-1]) < 8 * 1024 <= sum(e["tokens"] for e in c.files)
    assert c.get(3)["labels"] == c.get(3)["input_ids"] == c.rows[3].tolist()


def test_deterministic_and_the_seed_changes_the_order(tmp_path):
    a, b, other = _corpus(), _corpus(), _corpus(seed=1)
    assert a.sha256 == b.sha256 and a.rows.equal(b.rows)
    assert other.sha256 != a.sha256
    m = json.loads(a.write_manifest(tmp_path / "m.json").read_text())
    assert m["sha256"] == a.sha256 and m["tokens"] == 8 * 1024 and len(m["files_used"]) == len(a.files)
    listing = json.dumps([[f["path"], f["sha256"]] for f in m["files_used"]], separators=(",", ":"))
    assert hashlib.sha256(listing.encode()).hexdigest() == m["sha256"]


def test_evaluation_sources_are_left_out_by_hash_and_by_path():
    first = _corpus(rows=128)  # enough rows for several files
    assert len(first.files) >= 3
    by_hash = first.files[0]
    by_path = first.files[1]["path"].split("/", 1)[1]  # "site/ahn/x.py" -> the root-relative "ahn/x.py"
    c = _corpus(rows=128, exclusions=Exclusions(frozenset({by_hash["sha256"]}), frozenset({by_path})))
    used = {f["path"] for f in c.files}
    assert by_hash["path"] not in used and first.files[1]["path"] not in used
    assert {e["path"] for e in c.excluded} >= {by_hash["path"], first.files[1]["path"]}


def test_a_path_matches_with_or_without_a_prefix():
    ex = Exclusions(frozenset(), frozenset({"/usr/lib/python3.11/json/decoder.py", "Lib/asyncio/tasks.py"}))
    assert ex.reason("0" * 64, "json/decoder.py") and ex.reason("0" * 64, "asyncio/tasks.py")
    assert ex.reason("0" * 64, "decoder.py") is not None  # a trailing run of whole parts
    assert ex.reason("0" * 64, "torch/json/decoder.py") is None and ex.reason("0" * 64, "on/decoder.py") is None


def test_the_interface_is_read_and_a_missing_module_refuses(monkeypatch):
    fake = types.ModuleType("fake_eval_sources")
    fake.eval_source_hashes = lambda: {"AB" * 32}
    fake.eval_source_names = lambda: ["json/decoder.py"]
    monkeypatch.setitem(sys.modules, "fake_eval_sources", fake)
    ex = eval_exclusions("fake_eval_sources")
    assert ex.hashes == {"ab" * 32} and ex.names == {"json/decoder.py"}
    with pytest.raises(DataError, match="refusing to build"):
        eval_exclusions("no_such_module_for_eval_sources")


def _has_realtext() -> bool:
    return importlib.util.find_spec("tasks.realtext") is not None and \
        importlib.util.find_spec("tasks.realtext.sources") is not None


@pytest.mark.skipif(not _has_realtext(), reason="tasks.realtext.sources (the real-text evaluation sources) is "
                    "not in this tree")
def test_training_corpus_is_disjoint_from_the_realtext_evaluation():
    from tasks.realtext import sources

    hashes = {h.lower() for h in sources.eval_source_hashes()}
    names = set(sources.eval_source_names())
    c = PythonSourceCorpus(ByteTokenizer(), 4096, 64, roots=["stdlib"], min_tokens=4000)
    assert c.files
    for f in c.files:
        assert f["sha256"] not in hashes and f["path"].split("/", 1)[1] not in names, f


def test_unknown_root_is_named():
    with pytest.raises(DataError, match="valid: 'stdlib' or 'site:<package>'"):
        _corpus(roots=["nowhere"])
