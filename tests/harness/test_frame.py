"""harness.load_run as a DataFrame (dtypes, bucket order, round trip) and the lm-eval results export."""

from __future__ import annotations

import hashlib
import json
import math
import types
import typing
from pathlib import Path

import pandas as pd
import pytest

import harness
from harness import frame
from harness.buckets import bucket_sort_key
from harness.provenance import make_manifest
from harness.store import RunError, RunStore
from harness.store import load_run as load_records

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted(p.parent for p in (ROOT / "leaderboards").rglob("manifest.json") if (p.parent / "samples.jsonl").exists())
EXPECTED_KIND = {"string": pd.StringDtype, "Int64": pd.Int64Dtype, "Float64": pd.Float64Dtype,
                 "boolean": pd.BooleanDtype, "bucket": pd.CategoricalDtype}


def _check_frame(df: pd.DataFrame, raw: list[dict]) -> None:
    for name, dtype in frame.RECORD_DTYPES.items():
        if dtype == "object":
            assert df[name].dtype == object, name
        else:
            assert isinstance(df[name].dtype, EXPECTED_KIND[dtype]), (name, df[name].dtype)
    cats = list(df["bucket"].cat.categories)
    assert df["bucket"].cat.ordered and cats == sorted(cats, key=bucket_sort_key)
    back = frame.frame_records(df)
    assert len(back) == len(raw)
    for got, want in zip(back, raw):
        for key, value in want.items():
            assert got[key] == value and type(got[key]) is type(value), (key, got[key], value)
        assert all(got[k] is None for k in set(got) - set(want))


@pytest.mark.parametrize("run_dir", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_run_round_trips_with_its_dtypes(run_dir):
    raw = load_records(run_dir).records
    df = harness.load_run(run_dir)
    _check_frame(df, raw)
    assert list(df["run"].unique()) == [load_records(run_dir).label]


def test_committed_job_roots_load_as_one_frame():
    if not COMMITTED:
        pytest.skip("no committed runs")
    root = ROOT / "leaderboards" / "tiny" / "default-run"  # a job root whose runs hold passkey predictions
    first = frame.run_folders(root)[0]
    df = harness.load_run(root)
    assert set(df["run"].cat.categories) == {load_records(p).label for p in frame.run_folders(root)}
    # the prediction that read_json turns into a number stays the text the model produced
    passkey = df[df["task"] == "synthetic/passkey"]
    raw = {r["key"]: r["prediction"] for r in load_records(first).records}
    sample = passkey[passkey["run"] == load_records(first).label].iloc[0]
    assert sample["prediction"] == raw[sample["key"]] and sample["prediction"].startswith(" ")
    by_bucket = df.groupby("bucket", observed=True)["score"].mean()
    assert list(by_bucket.index) == list(df["bucket"].cat.categories)


def _write_run(path: Path, records: list[dict]) -> Path:
    manifest = make_manifest({"preset": {"name": "demo"}, "seed": 3, "limit": None}, label="demo")
    with RunStore.create_or_resume(path, manifest) as store:
        for rec in records:
            store.append(rec)
    return path


def _hashes(prompt: str, ids: list[int], answers: list[str]) -> dict[str, str]:
    """The three record hashes by their definition (prompt text, int64 token ids, sorted-key answers JSON)."""
    import numpy as np

    return {"prompt_sha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
            "input_ids_sha256": hashlib.sha256(np.asarray(ids, dtype="<i8").tobytes()).hexdigest(),
            "answers_sha256": hashlib.sha256(json.dumps(answers, ensure_ascii=False, sort_keys=True)
                                             .encode("utf-8")).hexdigest()}


def _records() -> list[dict]:
    out = []
    for i, (bucket, prediction, score) in enumerate([("8k-16k", " 007", 1.0), ("0-4k", "12", 0.0),
                                                     ("128k+", "x", 0.5), ("0-4k", "12", 1.0)]):
        out.append({"key": f"t/a|{i}", "task": "lveval/a", "level": None, "id": str(i), "bucket": bucket,
                    "prompt_tokens_before": 100 * (i + 1), "prompt_tokens": 90, "truncated": i == 2,
                    "answers": ["007"], "status": "ok", "prediction": prediction, "score": score,
                    "flops_paper": 10**15 + i, "peak_mem_bytes": None, "new_field": {"a": [1]},
                    **_hashes(f"prompt {i}", [1, 2, i], ["007"])})
    out.append({"key": "t/a|9", "task": "lveval/a", "bucket": "0-4k", "status": "failed", "error": "out of memory",
                "score": None, "prediction": None, "answers": ["1"]})
    return out


def test_dtypes_order_and_unknown_fields_on_a_written_run(tmp_path):
    run = _write_run(tmp_path / "r", _records())
    df = harness.load_run(run)
    _check_frame(df, load_records(run).records)
    assert list(df["bucket"].cat.categories) == ["0-4k", "8k-16k", "128k+"]
    assert df["new_field"].dtype == object and df["new_field"].iloc[0] == {"a": [1]}
    assert df["flops_paper"].iloc[0] == 10**15 and pd.isna(df["peak_mem_bytes"].iloc[0])
    assert df["prediction"].iloc[0] == " 007" and pd.isna(df["prediction"].iloc[-1])


def test_old_runs_without_hashes_load_with_missing_hashes(tmp_path):
    recs = [{k: v for k, v in r.items() if not k.endswith("_sha256")} for r in _records()]
    df = harness.load_run(_write_run(tmp_path / "old", recs))
    assert df["prompt_sha256"].isna().all() and isinstance(df["prompt_sha256"].dtype, pd.StringDtype)


def test_a_field_of_the_wrong_type_is_named(tmp_path):
    recs = _records()
    recs[0]["prompt_tokens"] = 1.5
    with pytest.raises(RunError, match="'prompt_tokens'.*Int64"):
        harness.load_run(_write_run(tmp_path / "bad", recs))


# ---------------------------------------------------------------------------------------------- lm-eval


def _conforms(value, hint, where: str, globalns: dict) -> None:
    """A field-by-field check of a JSON value against one of lm-eval's result_schema annotations."""
    import typing_extensions as te

    if isinstance(hint, str):
        hint = eval(hint, globalns)  # the schema's forward references
    if hint is typing.Any:
        return
    if isinstance(hint, typing.TypeVar):
        return _conforms(value, hint.__bound__, where, globalns)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _conforms(value, option, where, globalns)
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: {value!r} matches none of {hint}: {errors}")
    if origin in (te.NotRequired, typing.NotRequired):
        return _conforms(value, typing.get_args(hint)[0], where, globalns)
    if hint is type(None):
        assert value is None, f"{where}: expected null, got {value!r}"
        return
    if te.is_typeddict(hint) or te.is_typeddict(origin):
        td = origin if origin is not None else hint
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        hints = te.get_type_hints(td, globalns=globalns)
        extra = getattr(td, "__extra_items__", None)
        if origin is not None and isinstance(extra, typing.TypeVar):
            extra = typing.get_args(hint)[0]
        for key in td.__required_keys__:
            assert key in value, f"{where}: required key {key!r} missing"
        for key, item in value.items():
            if key in hints:
                _conforms(item, hints[key], f"{where}.{key}", globalns)
            else:
                assert extra not in (None, te.NoExtraItems), f"{where}: key {key!r} is not in {td.__name__}"
                _conforms(item, extra, f"{where}.{key}", globalns)
        return
    if origin is dict:
        kt, vt = typing.get_args(hint)
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        for key, item in value.items():
            _conforms(key, kt, f"{where} key", globalns)
            _conforms(item, vt, f"{where}[{key!r}]", globalns)
        return
    if origin in (list, tuple):
        assert isinstance(value, list), f"{where}: expected a list, got {value!r}"
        (it,) = typing.get_args(hint)[:1]
        for i, item in enumerate(value):
            _conforms(item, it, f"{where}[{i}]", globalns)
        return
    if hint is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: {value!r} is not a number"
        return
    if hint is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an int"
        return
    assert isinstance(value, hint), f"{where}: {value!r} is not {hint}"


def _sample_conforms(row: dict, schema, ns: dict) -> None:
    """A sample against SampleResult; a record written before the hashes existed exports prompt_hash null."""
    if row["prompt_hash"] is None:
        assert row["doc"]["input_ids_sha256"] is None  # an old record, not a lost hash
        row = {**row, "prompt_hash": "(absent in this run)"}
    _conforms(row, schema.SampleResult, f"sample {row['doc']['key']}", ns)


def _schema():
    schema = pytest.importorskip("lm_eval.result_schema")
    return schema, vars(schema)


def test_export_of_the_default_run_is_read_by_lm_eval(tmp_path):
    if not COMMITTED:
        pytest.skip("no committed runs")
    from lm_eval.api.metrics import mean_stderr
    from lm_eval.utils import (
        get_file_task_name,
        get_latest_filename,
        get_results_filenames,
        get_sample_results_filenames,
        handle_non_serializable,
        hash_string,
        make_table,
    )

    schema, ns = _schema()
    root = COMMITTED[0].parent
    written = frame.to_lm_eval_results(root, tmp_path)
    for run_dir in frame.run_folders(root):
        run = load_records(run_dir)
        files = [str(p) for p in written if p.parent.name == run.label]
        results = json.loads(Path(get_latest_filename(get_results_filenames(files))).read_text())
        _conforms(results, schema.EvalResults, "results", ns)
        assert results["model_name"] == run.label
        table = make_table(results)
        for task in {r["task"] for r in run.records}:
            assert task in table
        scored = [r for r in run.records if r.get("status", "ok") == "ok"]
        tasks = {get_file_task_name(Path(f).name) for f in get_sample_results_filenames(files)}
        assert tasks == {n for n in results["results"] if n not in results["groups"]}
        n = 0
        for f in get_sample_results_filenames(files):
            name = get_file_task_name(Path(f).name)
            rows = [json.loads(line) for line in Path(f).read_text().splitlines()]
            scores = [row["score"] for row in rows]
            entry = results["results"][name]
            assert entry["score,none"] == pytest.approx(sum(scores) / len(scores), abs=1e-12)
            if len(scores) > 1:
                assert entry["score_stderr,none"] == pytest.approx(mean_stderr(scores), rel=1e-12)
            for row in rows:
                _sample_conforms(row, schema, ns)
                assert row["doc_hash"] == hash_string(json.dumps(row["doc"], indent=2, default=handle_non_serializable,
                                                                 ensure_ascii=False))
                assert row["target_hash"] == hash_string(str(row["target"]))
                n += 1
        assert n == len(scored)


def test_export_carries_the_record_hashes_and_conforms(tmp_path):
    schema, ns = _schema()
    run = _write_run(tmp_path / "r", _records())
    results, samples = frame.lm_eval_results(load_records(run))
    _conforms(results, schema.EvalResults, "results", ns)
    assert results["n-samples"]["lveval_a_0_4k"] == {"original": 3, "effective": 2}  # the failed one is counted
    assert "score_stderr,none" not in results["results"]["lveval_a_8k_16k"]  # one sample: no standard error
    recs = {r["key"]: r for r in _records()}
    for rows in samples.values():
        for row in rows:
            _sample_conforms(row, schema, ns)
            rec = recs[row["doc"]["key"]]
            assert row["prompt_hash"] == rec["prompt_sha256"]
            assert row["target_hash"] == rec["answers_sha256"]
            assert row["doc"]["input_ids_sha256"] == rec["input_ids_sha256"]
            assert row["resps"] == [[rec["prediction"]]] and math.isclose(row["score"], rec["score"])


def test_export_command_writes_lm_eval_layout(tmp_path, capsys):
    from harness.cli import main

    run = _write_run(tmp_path / "r", _records())
    assert main(["export-lm-eval", str(run), "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 1 and Path(printed[0]).parent == tmp_path / "out" / "demo"
    assert Path(printed[0]).name.startswith("results_")


@pytest.mark.parametrize("spoil", [
    lambda r: r.update(unknown_key=1),
    lambda r: r.update(date="yesterday"),
    lambda r: next(iter(r["results"].values())).update({"score_stderr,none": "N/A"}),
    lambda r: next(iter(r["n-samples"].values())).pop("effective"),
    lambda r: r["config"].update(batch_sizes=["1"]),
])
def test_the_schema_check_catches_a_wrong_field(tmp_path, spoil):
    """Negative controls: the field-by-field check rejects what lm-eval's schema does not allow."""
    schema, ns = _schema()
    results, _ = frame.lm_eval_results(load_records(_write_run(tmp_path / "r", _records())))
    spoil(results)
    with pytest.raises(AssertionError):
        _conforms(results, schema.EvalResults, "results", ns)
