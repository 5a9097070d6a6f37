"""bench/bench_gqa_decode.py at toy scale on the CPU (`--tiny`): the cases it times, in the order it times them,
what it records per case, the budget, and that the settings it compares compute the same first step."""

from __future__ import annotations

import json

import torch


def test_cases_put_the_symptom_first_and_cover_every_setting():
    from bench.bench_gqa_decode import cases

    todo = cases([1, 5, 16], [4096, 32768, 131072], lambda b: 16)
    head = [(c["batch"], c["prompt"], c["label"]) for c in todo[:3]]
    assert head == [(5, 131072, "flex"), (5, 131072, "flex-heads"), (5, 131072, "products")]
    labels = {c["label"] for c in todo}
    assert {"flex SPLIT_KV=32", "flex SPLIT_KV=8", "flex BLOCK_N=128", "flex torch default"} <= labels
    shapes = {(c["batch"], c["prompt"]) for c in todo if c["label"] in ("flex", "products")}
    assert shapes == {(b, p) for b in (1, 5, 16) for p in (4096, 32768, 131072)}
    assert len({json.dumps(c, sort_keys=True) for c in todo}) == len(todo)  # no case twice


def test_tiny_run_writes_every_case_with_its_floor_and_agrees_with_the_products(tmp_path):
    from transformers import Qwen2Config

    from bench.bench_gqa_decode import TINY_SHAPE, main
    from tests.tolerance import model_chain_ops, rounding_bound

    main(["--tiny", "--out", str(tmp_path), "--prompts", "64", "--batches", "1,5", "--reps", "2", "--steps", "2",
          "--only", "flex,flex-heads,products"])
    doc = json.loads((tmp_path / "gqa_decode_bench.json").read_text())
    got = [(c["batch"], c["label"]) for c in doc["cases"]]
    assert got == [(5, "flex"), (5, "flex-heads"), (5, "products"), (1, "flex"), (1, "products")]
    assert doc["copy_rate_gb_s"] > 0 and doc["machine"]["torch"] == torch.__version__
    n_ops = model_chain_ops(Qwen2Config(**TINY_SHAPE), doc["cases"][0]["capacity"])
    for c in doc["cases"]:
        assert 0 < c["ms_min"] <= c["ms"] <= c["ms_max"]
        assert c["capacity"] >= c["prompt"] and c["kv_gb"] > 0 and c["floor_gb"] > c["kv_gb"]
        # 2 layers x (K + V) x B rows x 2 KV heads x capacity x head dim 8 x 4 bytes (fp32)
        assert c["kv_gb"] * 1e9 == 2 * 2 * c["batch"] * 2 * c["capacity"] * 8 * 4
        assert c["group_rows"] == (c["label"] == "flex")
        if c["label"] != "products":
            assert c["rel_err_vs_products"] <= rounding_bound(torch.float32, n_ops, 1.0)
    md = (tmp_path / "gqa_decode_bench.md").read_text()
    assert doc["machine"]["date"] in md and "× floor" in md and "| 5 | 64 | flex-heads |" in md


def test_a_spent_budget_runs_one_case_and_lists_the_rest(tmp_path):
    from bench.bench_gqa_decode import main

    main(["--tiny", "--out", str(tmp_path), "--prompts", "64", "--batches", "1", "--reps", "1", "--steps", "1",
          "--budget-s", "0"])
    doc = json.loads((tmp_path / "gqa_decode_bench.json").read_text())
    assert len(doc["cases"]) == 1 and doc["cases"][0]["label"] == "flex"
    assert doc["skipped"] and "Not run" in (tmp_path / "gqa_decode_bench.md").read_text()


def test_kernel_choices_reads_inductors_decision_and_restores_the_loggers():
    """The message as `_use_flex_decoding` logs it (torch's flex_decoding module, at DEBUG), read as a bool."""
    import logging

    from bench.bench_gqa_decode import FLEX_DECODING_LOGGERS, kernel_choices

    log = logging.getLogger(FLEX_DECODING_LOGGERS[0])
    before = log.level
    with kernel_choices() as chooser:
        fmt = "Use flex decoding %s, force_flex_attention=%s, short_query_length=%s"
        log.debug(fmt, False, False, True)
        log.debug(fmt, True, False, True)
        log.debug("something else")
    log.debug(fmt, True, False, True)  # after the block: not recorded
    assert chooser.decisions == [False, True]
    assert log.level == before and chooser not in log.handlers
