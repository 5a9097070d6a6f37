"""The lm-eval bridge: a tiny local task run offline through lm-eval on full attention and sinks+SWA, with the
predictions reproduced independently (own truncation arithmetic + `baselines.engine.generate`), plus the
truncation, stop-string, greedy-only and loglikelihood contracts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("lm_eval")

from baselines import attach, make_method  # noqa: E402
from baselines.engine import generate  # noqa: E402
from harness import lm_eval_bridge as bridge  # noqa: E402
from tests.tiny_models import tiny_model  # noqa: E402
from tests.tolerance import model_chain_ops, rounding_bound  # noqa: E402

DATA = Path(__file__).resolve().parent / "lm_eval_data"
JSONL = DATA / "tiny_recall.jsonl"
pytestmark = pytest.mark.usefixtures("lm_eval_builtin_tasks_indexed_once")
GEN_TASK, MC_TASK = "ahn_tiny_recall", "ahn_tiny_recall_mc"
MAX_LENGTH, MAX_GEN = 96, 5  # every doc is longer than 96 - 5 bytes: all prompts are cut
SWA = {"sinks": 4, "window": 16}  # far below the prompt length: the window really drops tokens


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A random tiny Qwen2 with the byte tokenizer, saved as a local model folder (no Hub)."""
    from tasks.byte_tokenizer import save_byte_tokenizer

    path = tmp_path_factory.mktemp("tiny-model")
    tiny_model("qwen2", vocab=259).save_pretrained(path)
    save_byte_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    """The committed task YAMLs with the data path made absolute (the YAMLs name it relative to the repo)."""
    out = tmp_path_factory.mktemp("lm-eval-tasks")
    for yaml in DATA.glob("*.yaml"):
        text = yaml.read_text().replace("tests/harness/lm_eval_data/tiny_recall.jsonl", str(JSONL))
        assert str(JSONL) in text
        (out / yaml.name).write_text(text)
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matmuls gain nothing from threads, and on a busy 2-core box intra-op threads cost ~100x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    """Keep `datasets`' cache of the local json task out of the user's home."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")


def model_args(tiny_dir: Path, method: str, **extra) -> str:
    args = {"pretrained": tiny_dir, "method": method, "chunk": 32, "max_length": MAX_LENGTH,
            "truncation": "middle", "device": "cpu", "dtype": "float32", **extra}
    if method == "swa":
        args |= SWA
    return ",".join(f"{k}={v}" for k, v in args.items())


def make_lm(tiny_dir: Path, method: str = "swa", **extra):
    args = bridge._parse_model_args(model_args(tiny_dir, method, **extra))
    return bridge.lm_class()(**args)


def docs() -> list[dict]:
    return [json.loads(line) for line in JSONL.read_text().splitlines() if line.strip()]


def expected_predictions(tiny_dir: Path, method: str) -> list[str]:
    """What the bridge should answer, computed without it: the byte tokenizer makes tokens = bytes, so the
    LV-Eval middle cut is plain byte slicing; then greedy generation straight through the engine."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    mem = make_method("swa", **SWA) if method == "swa" else make_method("full")
    budget = MAX_LENGTH - MAX_GEN
    out = []
    with attach(model, mem):
        for doc in docs():
            raw = f"{doc['context']}\nQuestion: {doc['question']}\nAnswer:".encode()
            assert len(raw) > budget
            ids = list(raw[: budget // 2] + raw[-(budget // 2):])
            result = generate(model, mem, torch.tensor([ids]), max_new_tokens=MAX_GEN, chunk_size=32)
            text = tokenizer.decode(result.tokens[0], skip_special_tokens=True)
            out.append(text.split("\n")[0])
    return out


# ---- pure helpers ----------------------------------------------------------------------------------------
def test_cut_at_stop_cuts_at_the_earliest_stop_string():
    assert bridge.cut_at_stop("answer\nmore</s>tail", ["</s>", "\n"]) == "answer"
    assert bridge.cut_at_stop("a</s>b\nc", ["\n", "</s>"]) == "a"
    assert bridge.cut_at_stop("no stop here", ["\n"]) == "no stop here"
    assert bridge.cut_at_stop("keep all", ["", "zzz"]) == "keep all"  # empty stop strings never cut
    assert bridge.cut_at_stop("\nleading", ["\n"]) == ""


def test_greedy_settings_accept_greedy_and_refuse_sampling():
    assert bridge.greedy_settings({"until": "\n", "max_gen_toks": 7}) == (["\n"], 7, None)
    assert bridge.greedy_settings({}) == ([], bridge.DEFAULT_MAX_GEN_TOKS, None)
    # LongBench's YAMLs: temperature 1 but do_sample false → greedy, as in transformers
    assert bridge.greedy_settings({"until": [], "max_gen_toks": 64, "temperature": 1, "do_sample": False})[1] == 64
    assert bridge.greedy_settings({"temperature": 0.0, "repetition_penalty": 1.05})[2] == 1.05
    with pytest.raises(ValueError, match="greedily"):
        bridge.greedy_settings({"do_sample": True})
    with pytest.raises(ValueError, match="temperature"):
        bridge.greedy_settings({"temperature": 0.7})
    with pytest.raises(ValueError, match="beam"):
        bridge.greedy_settings({"num_beams": 4})
    with pytest.raises(ValueError, match="max_gen_toks"):
        bridge.greedy_settings({"max_gen_toks": 0})


def test_missing_lm_eval_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval.api.model", None)
    with pytest.raises(ImportError, match=r"pip install 'ahn-harness\[lmeval\]'"):
        bridge._lm_eval_api()


# ---- registration and construction ----------------------------------------------------------------------
def test_registered_under_its_name_without_hiding_lm_evals_models():
    from lm_eval.api.model import LM
    from lm_eval.api.registry import get_model

    cls = bridge.register()
    assert issubclass(cls, LM) and get_model("ahn-harness") is cls
    assert bridge.HarnessLM is cls
    get_model("dummy")  # the built-in models are still there (lm-eval 0.4.10+ fills its registry lazily)
    assert "hf" in bridge._model_table()
    bridge._register(cls, None)  # a second registration is a no-op, not a clash


def test_model_args_are_checked(tiny_dir):
    cls = bridge.lm_class()
    with pytest.raises(ValueError, match="unknown model_args"):
        cls(pretrained=str(tiny_dir), bogus=1)
    with pytest.raises(ValueError, match="exactly one of"):
        cls(preset="tiny-swa", pretrained=str(tiny_dir))
    with pytest.raises(ValueError, match="truncation"):
        cls(pretrained=str(tiny_dir), truncation="right")
    lm = make_lm(tiny_dir, "full", truncation="none")  # lm-eval parses "none" as None
    assert lm.truncation_kind == "none"
    lm.close()


# ---- truncation -------------------------------------------------------------------------------------------
def test_middle_truncation_keeps_the_question_at_the_end(tiny_dir):
    lm = make_lm(tiny_dir, max_length=64)
    try:
        question = "Question: what is the pass key?\nAnswer:"
        context = "The pass key is 7361. " + "filler text. " * 40 + question
        ids = lm.prompt_ids(context, reserve=8)  # budget 56 tokens = 56 bytes
        text = lm.tokenizer.decode(ids)
        assert len(ids) == 56
        assert text == context[:28] + context[-28:]
        assert text.startswith("The pass key is 7361.") and text.endswith(question[-28:])
        assert lm.truncated_count == 1
        short = "short prompt " + question
        assert lm.tokenizer.decode(lm.prompt_ids(short, reserve=8)) == short  # under budget: untouched

        lm.truncation_kind = "left"
        assert lm.tokenizer.decode(lm.prompt_ids(context, reserve=8)) == context[-56:]
        lm.truncation_kind = "none"
        assert len(lm.prompt_ids(context, reserve=8)) == len(context.encode())
        assert lm.get_model_info()["truncation"]["kind"] == "none"
    finally:
        lm.close()


def test_chat_template_is_applied_after_truncating_the_user_message(tiny_dir):
    from tasks.byte_tokenizer import IM_END, IM_START

    lm = make_lm(tiny_dir, max_length=64)
    try:
        content = "HEAD " + "x" * 200 + " what is the key?"
        rendered = lm.apply_chat_template([{"role": "user", "content": content}])
        assert rendered == f"{IM_START}user\n{content}{IM_END}\n{IM_START}assistant\n"
        assert lm.chat_template(True) and lm.tokenizer_name
        ids = lm.prompt_ids(rendered, reserve=8)
        cut = content[:28] + content[-28:]
        assert lm.tokenizer.decode(ids) == f"{IM_START}user\n{cut}{IM_END}\n{IM_START}assistant\n"
        assert ids[0] == lm.tokenizer.convert_tokens_to_ids(IM_START)  # the template's special tokens survive
    finally:
        lm.close()


# ---- lm-eval end to end -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["full", "swa"])
def test_simple_evaluate_offline_matches_the_engine(tiny_dir, task_dir, method):
    import lm_eval
    from lm_eval.tasks import TaskManager

    n_docs = len(docs())
    if method == "full":  # the LM instance straight into lm_eval.simple_evaluate
        lm = make_lm(tiny_dir, method)
        try:
            results = lm_eval.simple_evaluate(
                model=lm, tasks=[GEN_TASK], log_samples=True,
                task_manager=TaskManager(include_path=str(task_dir), include_defaults=False))
        finally:
            lm.close()
        assert lm.request_counts["generate_until"] == n_docs
        assert lm.truncated_count == n_docs
    else:  # the evaluate() helper, with the multiple-choice task too (loglikelihood requests)
        results = bridge.evaluate(model_args(tiny_dir, method), [GEN_TASK, MC_TASK], include_path=str(task_dir),
                                  log_samples=True)
        assert 0.0 <= results["results"][MC_TASK]["acc,none"] <= 1.0
        assert len(results["samples"][MC_TASK]) == n_docs

    assert "exact_match,none" in results["results"][GEN_TASK]
    assert results["n-samples"][GEN_TASK]["effective"] == n_docs
    samples = sorted(results["samples"][GEN_TASK], key=lambda s: s["doc_id"])
    assert len(samples) == n_docs
    predictions = [s["resps"][0][0] for s in samples]
    assert predictions == expected_predictions(tiny_dir, method)

    config = results["config"]
    assert config["memory_method"] == ({"method": "swa", **SWA} if method == "swa"
                                       else {"method": "full", "sinks": 0, "window": None})
    assert config["truncation"]["kind"] == "middle" and config["truncation"]["max_length"] == MAX_LENGTH
    assert config["decoding"] == "greedy"
    if method == "swa":
        # 2 layers × a 16-token window + 4 sinks see only the prompts' identical last 32 bytes: same answer
        assert len(set(predictions)) == 1


# ---- loglikelihoods -----------------------------------------------------------------------------------------
def _sum_bound(lm, ref: torch.Tensor, seq_len: int, n_terms: int) -> float:
    """fp32 rounding bound of a sum of ``n_terms`` log-probs, each from a forward (tests/tolerance.py) and a
    log-softmax over the vocabulary, at the largest log-prob magnitude."""
    per_token = model_chain_ops(lm.model.config, seq_len) + lm.model.config.vocab_size
    return n_terms * rounding_bound(torch.float32, per_token, ref.abs().max().item())


def _one_shot_logprobs(lm, ids: list[int]) -> torch.Tensor:
    """Log-probs of every next token from one stateless forward under the attached method (no streaming)."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = lm.model(input_ids=x, position_ids=torch.arange(len(ids))[None], use_cache=False).logits[0]
    return torch.log_softmax(logits.float(), -1)


@pytest.mark.parametrize("method", ["full", "swa"])
def test_loglikelihood_streams_like_a_one_shot_forward(tiny_dir, method):
    lm = make_lm(tiny_dir, method, max_length=4096)  # no truncation here: 90-byte contexts, 32-token chunks
    try:
        context = "The secret word is kilo. " + "echo mike bravo " * 5 + "\nAnswer:"
        continuation = " kilo"
        (logprob, greedy), = lm.loglikelihood([SimpleNamespace(args=(context, continuation))])
        ctx_ids = list(context.encode())
        cont_ids = list(continuation.encode())
        ref = _one_shot_logprobs(lm, ctx_ids + cont_ids)
        want = sum(float(ref[len(ctx_ids) - 1 + i, t]) for i, t in enumerate(cont_ids))
        assert logprob == pytest.approx(want, abs=_sum_bound(lm, ref, len(ctx_ids) + len(cont_ids), len(cont_ids)))
        assert greedy == all(int(ref[len(ctx_ids) - 1 + i].argmax()) == t for i, t in enumerate(cont_ids))

        # the greedy next two tokens are reported as greedy (ids: a random model's bytes need not be UTF-8)
        first = int(ref[len(ctx_ids) - 1].argmax())
        second = int(_one_shot_logprobs(lm, [*ctx_ids, first])[-1].argmax())
        assert lm._score(ctx_ids, [first, second])[1] is True
        assert lm._score(ctx_ids, [first, (second + 1) % 256])[1] is False

        (rolling,) = lm.loglikelihood_rolling([SimpleNamespace(args=(context,))])
        prefix = lm.tokenizer.eos_token_id  # the byte tokenizer has no BOS
        ref = _one_shot_logprobs(lm, [prefix, *ctx_ids])
        assert rolling == pytest.approx(sum(float(ref[i, t]) for i, t in enumerate(ctx_ids)),
                                        abs=_sum_bound(lm, ref, len(ctx_ids) + 1, len(ctx_ids)))
        assert lm.request_counts == {"loglikelihood": 1, "loglikelihood_rolling": 1}
    finally:
        lm.close()


def test_generate_until_refuses_sampling_requests(tiny_dir):
    lm = make_lm(tiny_dir, "full")
    try:
        with pytest.raises(ValueError, match="greedily"):
            lm.generate_until([SimpleNamespace(args=("hello", {"do_sample": True, "max_gen_toks": 2}))])
        assert lm.generate_until([]) == []
    finally:
        lm.close()


def test_ahn_method_through_the_bridge(tiny_dir, tmp_path):
    """An AHN checkpoint loads through model_args; its memory is used by both request kinds."""
    from transformers import AutoModelForCausalLM

    from ahn.checkpoint import save_ahn_checkpoint

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    ahn = make_method("ahn-gdn", **SWA)
    with attach(model, ahn), torch.no_grad():
        torch.manual_seed(0)
        for block in ahn.blocks:
            block.fn.o_proj.weight.normal_(0, 0.05)  # non-zero read-out: the memory changes the output
        save_ahn_checkpoint(model, tmp_path / "ahn", "gdn", model.config.to_dict(), dtype=None)

    lm = make_lm(tiny_dir, "ahn-gdn", ahn_checkpoint=tmp_path / "ahn", **SWA)
    try:
        assert lm.get_model_info()["memory_method"]["method"].startswith("ahn")
        doc = docs()[-1]
        context = f"{doc['context']}\nQuestion: {doc['question']}\nAnswer:"
        (got,) = lm.generate_until([SimpleNamespace(args=(context, {"until": ["\n"], "max_gen_toks": MAX_GEN}))])
        raw = context.encode()
        half = (MAX_LENGTH - MAX_GEN) // 2
        result = generate(lm.model, lm.method, torch.tensor([list(raw[:half] + raw[-half:])]),
                          max_new_tokens=MAX_GEN, chunk_size=32)
        assert got == lm.tokenizer.decode(result.tokens[0], skip_special_tokens=True).split("\n")[0]

        ids = list(raw[:80])
        ref = _one_shot_logprobs(lm, ids)  # stateless pass: AHN writes evicted tokens within the forward
        assert lm._score(ids[:40], ids[40:])[0] == pytest.approx(
            sum(float(ref[i - 1, ids[i]]) for i in range(40, 80)), abs=_sum_bound(lm, ref, 80, 40))
    finally:
        lm.close()


# ---- stop strings, truncation counts, result names ------------------------------------------------------
def test_generation_stops_at_the_first_until_string(tiny_dir):
    """`until` ends generation itself, not only the returned text: a stop string matching the first generated
    character leaves one token generated instead of max_gen_toks."""
    lm = make_lm(tiny_dir, "full", max_length=4096)
    try:
        context = "The pass key is 7361. Remember it.\nAnswer:"
        (free,) = lm.generate_until([SimpleNamespace(args=(context, {"until": ["never-generated"],
                                                                     "max_gen_toks": 8}))])
        assert lm.generated_tokens == 8 and free  # runs to max_gen_toks when no stop string appears
        first = free[0]
        (cut,) = lm.generate_until([SimpleNamespace(args=(context, {"until": [first], "max_gen_toks": 8}))])
        assert cut == "" and lm.generated_tokens == 8 + 1
    finally:
        lm.close()


def test_truncation_is_logged_and_reported(tiny_dir, caplog):
    lm = make_lm(tiny_dir, "full")
    try:
        long = "filler " * 40 + "\nAnswer:"
        reqs = [SimpleNamespace(args=(long, {"until": ["\n"], "max_gen_toks": 2})),
                SimpleNamespace(args=("short\nAnswer:", {"until": ["\n"], "max_gen_toks": 2}))]
        with caplog.at_level("INFO", logger="harness.lm_eval_bridge"):
            lm.generate_until(reqs)
            lm.loglikelihood([SimpleNamespace(args=("short context", " yes"))])
        info = lm.get_model_info()
        assert info["truncated_prompts"] == {"total": 1, "generate_until": 1, "loglikelihood": 0}
        assert info["requests"] == {"generate_until": 2, "loglikelihood": 1}
        assert "1 of 2 generate_until prompt(s) were truncated (middle) to max_length=96" in caplog.text
        assert "none of 1 loglikelihood prompt(s) needed truncation" in caplog.text
    finally:
        lm.close()


def test_preset_is_passed_on_as_the_name_lm_eval_files_results_under():
    assert bridge.name_results_by_preset("preset=tiny-swa,chunk=64") == "pretrained=tiny-swa,chunk=64"
    assert bridge.name_results_by_preset({"preset": "tiny-full", "device": "cpu"}) == {
        "pretrained": "tiny-full", "device": "cpu"}
    assert bridge.name_results_by_preset("pretrained=/m,method=swa") == "pretrained=/m,method=swa"
    assert bridge._cli_model_args('{"preset": "tiny-full"}') == '{"pretrained": "tiny-full"}'
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker

    assert GeneralConfigTracker._get_model_name(bridge.name_results_by_preset("preset=tiny-swa")) == "tiny-swa"


def test_two_presets_land_under_their_names(task_dir, tmp_path, capsys, caplog):
    """lm-eval's own command line (through `harness lm-eval`) on two tiny presets: one results folder per
    preset, named after it, each carrying the truncation count; the warning is in the log. The first runs as a
    real process, as a user types it; the second through `harness.cli.main` in this process (the same code path
    after the interpreter starts), which spares a second interpreter and lm-eval task index."""
    import logging
    import os
    import subprocess

    from harness.cli import main

    root = Path(__file__).resolve().parents[2]
    if not (root / "leaderboards" / "tiny" / "base" / "config.json").exists():
        pytest.skip("the tiny world is not committed in this checkout")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "c")}
    for preset, device in (("tiny-full", ["--device", "cpu"]), ("tiny-swa", [])):  # device= as a model arg too
        argv = ["lm-eval", "run", "--model", "ahn-harness", "--model_args",
                f"preset={preset},max_length={MAX_LENGTH}" + ("" if device else ",device=cpu"), *device, "--tasks",
                GEN_TASK, "--include_path", str(task_dir), "--allow-include-path-code", "--limit", "2",
                "--output_path", str(tmp_path / "out")]
        if preset == "tiny-full":
            proc = subprocess.run([sys.executable, "-m", "harness", *argv], cwd=root, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            said = proc.stderr + proc.stdout
        else:
            loggers = [logging.getLogger(), *(v for v in logging.root.manager.loggerDict.values()
                                              if isinstance(v, logging.Logger))]
            handlers_before = {id(lg): list(lg.handlers) for lg in loggers}
            try:
                with caplog.at_level(logging.INFO):
                    assert main(argv) == 0
            finally:  # lm-eval adds stream handlers bound to this test's captured stderr; later tests would use them
                for lg in [logging.getLogger(), *(v for v in logging.root.manager.loggerDict.values()
                                                  if isinstance(v, logging.Logger))]:
                    for h in lg.handlers[:]:
                        if h not in handlers_before.get(id(lg), []):
                            lg.removeHandler(h)
            out = capsys.readouterr()
            said = out.err + out.out + caplog.text
        assert "2 of 2 generate_until prompt(s) were truncated" in said
    folders = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert folders == ["tiny-full", "tiny-swa"]
    for name in folders:
        (res,) = (tmp_path / "out" / name).glob("results_*.json")
        doc = json.loads(res.read_text())
        assert doc["model_name"] == name
        assert doc["config"]["truncated_prompts"]["generate_until"] == 2
        assert doc["config"]["harness_preset"]["name"] == name
        assert doc["config"]["harness_device"] == "cpu" and doc["config"]["device"] == "cpu"


def test_include_path_needs_the_code_flag_and_device_is_passed_on() -> None:
    """--include_path runs the folder's code: refused without --allow-include-path-code (which lm-eval never
    sees); device= in the model arguments becomes lm-eval's --device, and a conflicting --device is refused."""
    with pytest.raises(ValueError, match=r"--include_path /t: task folders can run code.*--allow-include-path-code"):
        bridge._check_include_path(["run", "--include_path", "/t"])
    with pytest.raises(ValueError, match="can run code"):
        bridge._check_include_path(["run", "--include_path=/t"])
    assert bridge._check_include_path(["run", "--include_path", "/t", "--allow-include-path-code"]) == [
        "run", "--include_path", "/t"]
    assert bridge._device_flag(["run", "--model_args", "preset=tiny-full,device=cpu"]) == [
        "run", "--model_args", "preset=tiny-full,device=cpu", "--device", "cpu"]
    assert bridge._device_flag(["run", "--model_args", '{"preset": "tiny-full", "device": "cpu"}', "--device",
                                "cpu"])[-1] == "cpu"
    with pytest.raises(ValueError, match="--device cuda:0 and model argument device=cpu differ"):
        bridge._device_flag(["run", "--model_args=preset=tiny-full,device=cpu", "--device", "cuda:0"])
    assert bridge._device_flag(["run", "--model_args", "preset=tiny-full"]) == [
        "run", "--model_args", "preset=tiny-full"]


def test_device_given_twice_builds_the_model_and_records_it(tiny_dir) -> None:
    """lm-eval's `cls(**model_args, **additional_config)` failed on device= given both ways; the model
    arguments win, and the device really used is recorded."""
    lm = bridge.lm_class().create_from_arg_string(model_args(tiny_dir, "full"), {"device": "cuda:0", "batch_size": 1})
    try:
        assert str(lm._device) == "cpu" and lm.get_model_info()["harness_device"] == "cpu"
    finally:
        lm.close()


def test_the_lm_eval_command_leaves_the_callers_command_line_as_it_was(monkeypatch):
    import sys

    import lm_eval.__main__ as lm_main

    from harness import lm_eval_bridge

    seen = []
    monkeypatch.setattr(lm_main, "cli_evaluate", lambda: seen.append(list(sys.argv)))
    monkeypatch.setattr(sys, "argv", ["caller", "--own-flag"])
    lm_eval_bridge.main(["--tasks", "x", "--limit", "1"])
    assert seen and seen[0][1:3] == ["--tasks", "x"]  # lm-eval saw its own arguments
    assert sys.argv == ["caller", "--own-flag"]
