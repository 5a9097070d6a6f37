"""Bad inputs across every command exit 2 with one ``error:`` line, never a traceback.

Each case names the bad value (and, where there is a list, the valid ones) in its expected substrings. The cases
run in-process through each command's ``main(argv)`` (the code path of the console entry points, minus the
interpreter start); ``test_no_traceback_reaches_stderr_of_a_real_process`` runs a handful as real subprocesses.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from harness.hashing import record_hashes
from harness.provenance import make_manifest
from harness.store import RunStore

REPO = Path(__file__).resolve().parents[2]
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
READ_ONLY = "/sys/ahn-harness-test"  # sysfs refuses new entries, even to root


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]  # "{w}" is replaced by the world folder; argv[0] "train" means python -m ahn.train
    needles: tuple[str, ...]
    setup: Callable[[pytest.MonkeyPatch, Path], None] | None = None
    skip: str | None = None
    absent: str | None = None  # a path (under {w}) that must not exist afterwards: nothing was written
    intact: tuple[str, ...] = ()  # paths (under {w}) whose every byte must be the same afterwards


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny model and AHN checkpoint, broken copies of them, two runs and a predictions file."""
    from ahn.checkpoint import save_ahn_checkpoint
    from baselines import attach, make_method
    from tasks.byte_tokenizer import save_byte_tokenizer
    from tests.tiny_models import tiny_model

    w = tmp_path_factory.mktemp("bad-inputs")
    model = tiny_model("qwen2", vocab=259)
    model.generation_config.eos_token_id = 258
    model.save_pretrained(w / "model")
    save_byte_tokenizer(w / "model")
    with attach(model, make_method("ahn-gdn", sinks=4, window=64)):
        save_ahn_checkpoint(model, w / "ahn", "gdn", model.config.to_dict())

    def broken(name: str, src: str = "model") -> Path:
        shutil.copytree(w / src, w / name)
        return w / name

    (broken("badjson") / "config.json").write_text("{")
    (broken("emptycfg") / "config.json").write_text("")
    (broken("cfgobject") / "config.json").write_text("{}")
    (broken("notamodel") / "config.json").write_text('{"hidden_size": 8}')
    (broken("noweights") / "model.safetensors").unlink()
    pickled = broken("pickled")  # the same weights as a torch pickle only
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    data = (w / "model" / "model.safetensors").read_bytes()
    (broken("truncated") / "model.safetensors").write_bytes(data[: len(data) // 2])
    (broken("junkahn", "ahn") / "model.safetensors").write_bytes(b"junk")
    (w / "a-file").write_text("x")
    (w / "not-a-run").mkdir()
    (w / "preds.jsonl").write_text('{"pred": "1", "answers": ["1"]}\n')
    (w / "empty.jsonl").write_text("")
    (w / "bad.json").write_text("{")
    for name, prompt in (("runA", "the key is 1"), ("runB", "the key is 2"), ("runC", None)):
        with RunStore.create_or_resume(w / name, make_manifest({"preset": name}, argv=["t"])) as store:
            key = "synthetic/passkey|512|0" if prompt else "synthetic/passkey|512|other"
            store.append({"key": key, "task": "synthetic/passkey", "level": "512", "score": 1.0, "status": "ok",
                          "prediction": "1", "answers": ["1"], **record_hashes(prompt or "x", [1, 2], ["1"])})
    evil = w / "evil-resume"
    evil.mkdir()
    torch.save({"x": _Payload()}, evil / "trainer_state.pt")
    return w


class _Payload:
    """A pickle that would create a file when unpickled without weights_only."""

    def __reduce__(self):
        return (os.mkdir, (str(Path(os.environ.get("AHN_TEST_PWNED", "/tmp/ahn-harness-pwned"))),))


def _full_disk(monkeypatch: pytest.MonkeyPatch, _w: Path) -> None:
    """A disk that fills up: every fsync reports ENOSPC (the write probe fsyncs)."""

    def fsync(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def _no_lm_eval(monkeypatch: pytest.MonkeyPatch, _w: Path) -> None:
    import functools

    from harness import lm_eval_bridge

    # a fresh cache for this test only: the registered class of the session stays what it was
    monkeypatch.setattr(lm_eval_bridge, "lm_class", functools.cache(lm_eval_bridge.lm_class.__wrapped__))
    for name in [m for m in sys.modules if m == "lm_eval" or m.startswith("lm_eval.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval -> ImportError


def _unreadable(monkeypatch: pytest.MonkeyPatch, w: Path) -> None:
    (w / "secret.jsonl").write_text('{"pred": "1", "answers": ["1"]}\n')
    (w / "secret.jsonl").chmod(0)


def _read_only_dir(monkeypatch: pytest.MonkeyPatch, w: Path) -> None:
    (w / "ro").mkdir(exist_ok=True)
    (w / "ro").chmod(0o500)


_HELD: list = []  # files a case's setup holds locked (a writer in flight) until the case has run


def _gate_runs(case: str) -> Callable[[pytest.MonkeyPatch, Path], None]:
    """The committed CPU reference copied to {w}/gate-ref and doctored as ``case`` into {w}/gate-<case>."""

    def setup(_mp: pytest.MonkeyPatch, w: Path) -> None:
        from tests.harness.doctored_runs import copy_reference, doctor

        if not (w / "gate-ref").exists():
            copy_reference(w / "gate-ref")
        target = w / f"gate-{case}"
        if not target.exists():
            doctor(target, "same" if case == "in-flight" else case)
        if case == "in-flight":  # a writer holds the samples file, as RunStore does for a whole run
            import fcntl

            fh = open(target / "samples.jsonl", "rb")  # noqa: SIM115 (closed after the case)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            _HELD.append(fh)
    return setup


def _user_files(_mp: pytest.MonkeyPatch, w: Path) -> None:
    """A user's folder (not a run), a file to protect, links to it, and prediction files."""
    (w / "userdir").mkdir(exist_ok=True)
    (w / "userdir" / "summary.md").write_text("my notes\n")
    (w / "victim.txt").write_text("a user's file\n")
    for name in ("link.jsonl",):
        if not (w / name).is_symlink():
            (w / name).symlink_to(w / "victim.txt")
    (w / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (w / "long.jsonl").write_text('{"pred": "' + "x" * 5000 + '", "answers": ["1"]}\n')


def _linked_run(mp: pytest.MonkeyPatch, w: Path) -> None:
    """A finished one-sample run whose samples.jsonl was then replaced by a link to the user's file."""
    _user_files(mp, w)
    run = w / "linked-run"
    if not run.exists():
        from harness.cli import main

        assert main([*RUN, "--model", str(w / "model"), "--output", str(run)]) == 0
        (run / "samples.jsonl").unlink()
        (run / "samples.jsonl").symlink_to(w / "victim.txt")


def _dotdot_run(_mp: pytest.MonkeyPatch, w: Path) -> None:
    """A run whose manifest label is '..' (an export named by it would land in the parent of --output)."""
    import json

    src = w / "runA"
    run = w / "dotdot-run"
    if not run.exists():
        shutil.copytree(src, run)
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["label"] = ".."
        (run / "manifest.json").write_text(json.dumps(manifest))


def _train_files(_mp: pytest.MonkeyPatch, w: Path) -> None:
    (w / "list.json").write_text("[1, 2]")
    (w / "latin1.json").write_bytes(b'{"base": "caf\xe9"}')
    (w / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (w / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00" * 64)  # an image, not text


def _bad_data(_mp: pytest.MonkeyPatch, w: Path) -> None:
    """Local InfiniteBench copies: one line nested 100,000 deep; one record without a context."""
    for name, line in (("ib-deep", "[" * 100_000 + "]" * 100_000),
                       ("ib-no-context", '{"id": 0, "input": "What is the pass key?", "answer": ["1"], "options": []}')):
        (w / name).mkdir(exist_ok=True)
        (w / name / "passkey.jsonl").write_text(line + "\n")


def _nan_checkpoint(_mp: pytest.MonkeyPatch, w: Path) -> None:
    from safetensors.torch import load_file, save_file

    if not (w / "nanahn").exists():
        shutil.copytree(w / "ahn", w / "nanahn")
        tensors = load_file(str(w / "nanahn" / "model.safetensors"))
        first = sorted(tensors)[0]
        tensors[first] = torch.full_like(tensors[first], float("nan"))
        save_file(tensors, str(w / "nanahn" / "model.safetensors"))


def _short_lines(mp: pytest.MonkeyPatch, w: Path) -> None:
    """A line limit of 1,000 bytes, so that a 5 kB line stands for a line too long for the real limit."""
    import tasks.jsonl

    _user_files(mp, w)
    mp.setattr(tasks.jsonl, "MAX_LINE_BYTES", 1000)


RUN = ["run", "--tasks", "synthetic:passkey@512", "--limit", "1", "--no-progress"]
M = ["--model", "{w}/model"]
OUT = ["--output", "{w}/out"]
NO_ROOT = "running as root: file permissions do not apply" if ROOT else None
NO_CUDA = "a CUDA GPU is present" if torch.cuda.is_available() else None
LM = ["lm-eval", "run", "--model", "ahn-harness", "--tasks", "lambada_openai", "--limit", "1", "--model_args"]
TRAIN = ["train", "data.source=synthetic", "data.seq_len=128", "output_dir={w}/train-out"]
GATE = ["compare", "--max-drop", "1.0", "--require-hashes", "--require-identical-ids", "{w}/gate-ref"]
SCORE = ["score", "--task", "lveval/factrecall_en", "--predictions"]

CASES = [
    # run: model selection
    Case("run-model-empty", [*RUN, "--model", "", *OUT], ("--model ''", "preset", "local model folder")),
    Case("run-model-comma", [*RUN, "--model", ",", *OUT], ("--model ','", "preset")),
    Case("run-model-unknown-preset", [*RUN, "--model", "nosuch-3b", *OUT], ("'nosuch-3b'", "Valid presets")),
    Case("run-model-pickle-only", [*RUN, "--model", "{w}/pickled", *OUT], ("pickles", "safetensors",
                                                                          "safe_serialization"), absent="out"),
    Case("run-model-missing-folder", [*RUN, "--model", "{w}/nope", *OUT], ("{w}/nope", "no such folder", "Hub id")),
    Case("run-method-unknown", [*RUN, *M, "--method", "nosuch", *OUT], ("'nosuch'", "valid methods", "swa")),
    Case("run-window-on-full", [*RUN, "--model", "tiny-full", "--window", "100", *OUT], ("--window", "swa")),
    Case("run-ahn-without-checkpoint", [*RUN, *M, "--method", "ahn-gdn", *OUT], ("ahn-gdn", "--ahn-checkpoint")),
    # run: numbers
    Case("run-window-zero", [*RUN, *M, "--method", "swa", "--window", "0", *OUT], ("--window 0", ">= 1"),
         absent="out"),
    Case("run-window-negative", [*RUN, *M, "--method", "swa", "--window", "-5", *OUT], ("--window -5", ">= 1")),
    Case("run-window-not-int", [*RUN, *M, "--window", "abc", *OUT], ("--window", "invalid int value: 'abc'")),
    Case("run-sinks-negative", [*RUN, *M, "--method", "swa", "--sinks", "-1", *OUT], ("--sinks -1", ">= 0")),
    Case("run-chunk-zero", [*RUN, *M, "--chunk", "0", *OUT], ("--chunk 0", ">= 1"), absent="out"),
    Case("run-chunk-huge-negative", [*RUN, *M, "--chunk", "-99999999999", *OUT], ("--chunk -99999999999",)),
    Case("run-max-new-tokens-negative", [*RUN, *M, "--max-new-tokens", "-1", *OUT], ("--max-new-tokens -1", ">= 0"),
         absent="out"),
    Case("run-limit-zero", [*RUN, *M, "--limit", "0", *OUT], ("--limit 0", ">= 1")),
    Case("run-repetition-penalty-zero", [*RUN, *M, "--repetition-penalty", "0", *OUT],
         ("--repetition-penalty 0.0", "> 0", "1.0 = no penalty")),
    Case("run-repetition-penalty-negative", [*RUN, *M, "--repetition-penalty", "-1", *OUT],
         ("--repetition-penalty -1.0", "> 0")),
    Case("run-repetition-penalty-nan", [*RUN, *M, "--repetition-penalty", "nan", *OUT],
         ("--repetition-penalty nan", "finite")),
    Case("run-repetition-penalty-inf", [*RUN, *M, "--repetition-penalty", "inf", *OUT],
         ("--repetition-penalty inf", "finite")),
    Case("run-batch-size-zero", [*RUN, *M, "--batch-size", "0", *OUT], ("--batch-size 0", ">= 1")),
    # run: the fast paths' environment switches, checked before any weights load
    Case("run-step-compile-unknown", [*RUN, *M, *OUT], ("AHN_HARNESS_STEP_COMPILE='yes'", "auto", "inductor"),
         setup=lambda mp, _w: mp.setenv("AHN_HARNESS_STEP_COMPILE", "yes"), absent="out"),
    Case("run-decode-splits-zero", [*RUN, *M, *OUT], ("AHN_HARNESS_DECODE_SPLITS='0'", "integer >= 1", "auto"),
         setup=lambda mp, _w: mp.setenv("AHN_HARNESS_DECODE_SPLITS", "0"), absent="out"),
    Case("run-decode-attention-unknown", [*RUN, *M, *OUT],
         ("AHN_HARNESS_DECODE_ATTENTION='flash'", "auto, products, flex"),
         setup=lambda mp, _w: mp.setenv("AHN_HARNESS_DECODE_ATTENTION", "flash"), absent="out"),
    Case("run-flex-decode-bad-key", [*RUN, *M, *OUT], ("AHN_HARNESS_FLEX_DECODE='BLOCK_M=64'", "BLOCK_N, num_stages"),
         setup=lambda mp, _w: mp.setenv("AHN_HARNESS_FLEX_DECODE", "BLOCK_M=64"), absent="out"),
    Case("run-window-attention-unknown", [*RUN, *M, *OUT], ("AHN_HARNESS_WINDOW_ATTENTION='cudnn'", "split", "flex"),
         setup=lambda mp, _w: mp.setenv("AHN_HARNESS_WINDOW_ATTENTION", "cudnn"), absent="out"),
    Case("run-fused-layers-unknown", [*RUN, *M, *OUT], ("AHN_HARNESS_FUSED_LAYERS='yes'", "0, 1, force"),
         setup=lambda mp, _w: mp.setenv("AHN_HARNESS_FUSED_LAYERS", "yes"), absent="out"),
    Case("run-fused-rotary-unknown", [*RUN, *M, *OUT], ("AHN_HARNESS_FUSED_ROTARY='yes'", "0, 1"),
         setup=lambda mp, _w: mp.setenv("AHN_HARNESS_FUSED_ROTARY", "yes"), absent="out"),
    Case("run-chunk-graphs-unknown", [*RUN, *M, *OUT], ("AHN_HARNESS_CHUNK_GRAPHS='on'", "0, 1"),
         setup=lambda mp, _w: mp.setenv("AHN_HARNESS_CHUNK_GRAPHS", "on"), absent="out"),
    Case("run-decode-choice", [*RUN, *M, "--decode", "turbo", *OUT], ("'turbo'", "eager", "static")),
    Case("run-seed-not-int", [*RUN, *M, "--seed", "1.5", *OUT], ("--seed", "invalid int value: '1.5'")),
    # run: device, dtype, choices, tasks
    Case("run-device-unknown", [*RUN, *M, "--device", "nosuch", *OUT], ("'nosuch'", "valid here: auto, cpu")),
    Case("run-device-cuda-absent", [*RUN, *M, "--device", "cuda", *OUT], ("'cuda'", "no CUDA GPU", "valid here"),
         skip=NO_CUDA),
    Case("run-device-cuda-index", [*RUN, *M, "--device", "cuda:7", *OUT], ("'cuda:7'", "valid here"),
         skip=NO_CUDA),
    Case("run-dtype-unknown", [*RUN, *M, "--dtype", "float8", *OUT], ("'float8'", "bfloat16")),
    Case("run-chat-template-choice", [*RUN, *M, "--chat-template", "maybe", *OUT], ("'maybe'", "auto", "on")),
    Case("run-tasks-empty", ["run", *M, "--tasks", "", *OUT], ("--tasks ''", "synthetic:passkey")),
    Case("run-tasks-unknown-family", ["run", *M, "--tasks", "nosuchfam", *OUT], ("'nosuchfam'", "lveval")),
    Case("run-tasks-bad-length", ["run", *M, "--tasks", "synthetic:passkey@12q", *OUT], ("'12q'", "4k")),
    # run: broken model and checkpoint folders (found before any weights load)
    Case("run-config-invalid-json", [*RUN, "--model", "{w}/badjson", *OUT], ("badjson/config.json", "JSON")),
    Case("run-config-empty-file", [*RUN, "--model", "{w}/emptycfg", *OUT], ("emptycfg/config.json", "JSON")),
    Case("run-config-empty-object", [*RUN, "--model", "{w}/cfgobject", *OUT], ("cfgobject/config.json", "empty")),
    Case("run-config-not-a-model", [*RUN, "--model", "{w}/notamodel", *OUT], ("notamodel", "cannot load the model")),
    Case("run-weights-missing", [*RUN, "--model", "{w}/noweights", *OUT], ("noweights", "no *.safetensors")),
    Case("run-weights-truncated", [*RUN, "--model", "{w}/truncated", *OUT],
         ("truncated/model.safetensors", "not a whole safetensors")),
    Case("run-ahn-checkpoint-junk", [*RUN, *M, "--method", "ahn-gdn", "--ahn-checkpoint", "{w}/junkahn", *OUT],
         ("junkahn/model.safetensors", "not a whole safetensors")),
    Case("run-ahn-checkpoint-on-swa", [*RUN, *M, "--method", "swa", "--window", "64", "--ahn-checkpoint", "{w}/ahn",
                                       "--output", "{w}/out-swa"], ("--ahn-checkpoint {w}/ahn", "not 'swa'"),
         absent="out-swa"),
    Case("run-ahn-checkpoint-missing", [*RUN, *M, "--method", "ahn-gdn", "--ahn-checkpoint", "{w}/nope", *OUT],
         ("{w}/nope", "no such folder")),
    # run: output
    Case("run-output-read-only-fs", [*RUN, *M, "--output", READ_ONLY], (READ_ONLY, "cannot write there")),
    Case("run-output-read-only-dir", [*RUN, *M, "--output", "{w}/ro/run"], ("{w}/ro/run", "cannot write there"),
         setup=_read_only_dir, skip=NO_ROOT),
    Case("run-output-is-a-file", [*RUN, *M, "--output", "{w}/a-file"], ("{w}/a-file", "not a folder")),
    Case("run-output-disk-full", [*RUN, *M, "--output", "{w}/full"], ("{w}/full", "the disk is full"),
         setup=_full_disk),
    # info, list
    Case("info-window-zero", ["info", "--model", "tiny-swa", "--length", "1k", "--window", "0"], ("--window 0", ">= 1")),
    Case("info-chunk-negative", ["info", "--model", "tiny-swa", "--length", "1k", "--chunk", "-1"], ("--chunk -1",)),
    Case("info-length-zero", ["info", "--model", "tiny-swa", "--length", "0"], ("'0'", "positive")),
    Case("info-length-junk", ["info", "--model", "tiny-swa", "--length", "12q"], ("'12q'", "128k")),
    Case("info-dtype-bytes-zero", ["info", "--model", "tiny-swa", "--length", "1k", "--dtype-bytes", "0"],
         ("--dtype-bytes 0", ">= 1")),
    Case("info-unknown-preset", ["info", "--model", "tiny-nosuch", "--length", "1k"], ("'tiny-nosuch'", "tiny-swa")),
    Case("list-unknown", ["list", "nosuch"], ("'nosuch'", "presets", "methods")),
    # score
    Case("score-unknown-task", ["score", "--task", "nosuch/x", "--predictions", "{w}/preds.jsonl"],
         ("'nosuch/x'", "lveval/factrecall_en")),
    Case("score-missing-file", ["score", "--task", "lveval/factrecall_en", "--predictions", "{w}/nope.jsonl"],
         ("{w}/nope.jsonl", "not found")),
    Case("score-empty-file", ["score", "--task", "lveval/factrecall_en", "--predictions", "{w}/empty.jsonl"],
         ("{w}/empty.jsonl", "empty")),
    Case("score-folder-as-file", ["score", "--task", "lveval/factrecall_en", "--predictions", "{w}"],
         ("{w}", "not a file")),
    Case("score-unreadable-file", ["score", "--task", "lveval/factrecall_en", "--predictions", "/proc/self/mem"],
         ("/proc/self/mem", "cannot read")),
    Case("score-unreadable-permissions", ["score", "--task", "lveval/factrecall_en", "--predictions",
                                          "{w}/secret.jsonl"], ("{w}/secret.jsonl",), setup=_unreadable,
         skip=NO_ROOT),
    Case("score-output-disk-full", ["score", "--task", "lveval/factrecall_en", "--predictions", "{w}/preds.jsonl",
                                    "--output", "{w}/scores.jsonl"], ("{w}/scores.jsonl", "the disk is full"),
         setup=_full_disk, absent="scores.jsonl"),
    Case("score-output-device", ["score", "--task", "lveval/factrecall_en", "--predictions", "{w}/preds.jsonl",
                                 "--output", "/dev/full"], ("/dev/full", "not a regular file")),
    Case("score-output-read-only", ["score", "--task", "lveval/factrecall_en", "--predictions", "{w}/preds.jsonl",
                                    "--output", f"{READ_ONLY}/x.jsonl"], (f"{READ_ONLY}/x.jsonl", "cannot write")),
    Case("score-missing-task-flag", ["score", "--predictions", "{w}/preds.jsonl"], ("--task", "required")),
    # compare
    Case("compare-missing-run", ["compare", "{w}/nope", "{w}/runA"], ("{w}/nope", "no such run folder")),
    Case("compare-not-a-run", ["compare", "{w}/not-a-run", "{w}/runA"], ("{w}/not-a-run", "not a run folder")),
    Case("compare-different-inputs", ["compare", "{w}/runA", "{w}/runB"],
         ("different inputs", "prompt_sha256", "synthetic/passkey|512|0")),
    Case("compare-no-shared-key", ["compare", "{w}/runA", "{w}/runC"], ("share no sample key",)),
    Case("compare-max-drop-nan", ["compare", "{w}/runA", "{w}/runA", "--max-drop", "nan"], ("--max-drop nan", ">= 0")),
    Case("compare-max-drop-negative", ["compare", "{w}/runA", "{w}/runA", "--max-drop", "-1"], ("--max-drop -1.0",)),
    Case("compare-n-boot-zero", ["compare", "{w}/runA", "{w}/runA", "--n-boot", "0"], ("--n-boot 0", ">= 1")),
    Case("compare-ci-level-huge", ["compare", "{w}/runA", "{w}/runA", "--ci-level", "1e9"],
         ("--ci-level 1000000000.0", "0 < level < 1")),
    # compare: the regression gate refuses a doctored or unfinished run (tests/harness/doctored_runs.py)
    Case("compare-gate-in-flight", [*GATE, "{w}/gate-in-flight"], ("being written by another process",),
         setup=_gate_runs("in-flight"), intact=("gate-ref", "gate-in-flight")),
    Case("compare-gate-zero-pairs", [*GATE, "{w}/gate-all-failed"], ("zero scored pairs",),
         setup=_gate_runs("all-failed"), intact=("gate-ref", "gate-all-failed")),
    Case("compare-gate-inflated-score", [*GATE, "{w}/gate-inflated"], ("1000.0", "outside the metric's range"),
         setup=_gate_runs("inflated"), intact=("gate-ref", "gate-inflated")),
    Case("compare-gate-edited-scores", [*GATE, "{w}/gate-edited"], ("its prediction scores 0.0",),
         setup=_gate_runs("edited"), intact=("gate-ref", "gate-edited")),
    Case("compare-gate-duplicate-lines", [*GATE, "{w}/gate-duplicate"], ("on more than one line",),
         setup=_gate_runs("duplicate"), intact=("gate-ref", "gate-duplicate")),
    Case("compare-gate-stray-shard", [*GATE, "{w}/gate-stray-shard"], ("samples.rank0-of2.jsonl",),
         setup=_gate_runs("stray-shard"), intact=("gate-ref", "gate-stray-shard")),
    Case("compare-gate-unparsable-line", [*GATE, "{w}/gate-unparsable"], ("1 unparsable line(s)",),
         setup=_gate_runs("unparsable"), intact=("gate-ref", "gate-unparsable")),
    Case("compare-gate-deep-nesting", [*GATE, "{w}/gate-deep-nesting"], ("1 unparsable line(s)",),
         setup=_gate_runs("deep-nesting"), intact=("gate-ref", "gate-deep-nesting")),
    Case("compare-gate-stripped-hashes", [*GATE, "{w}/gate-stripped-hashes"], ("without input hashes",),
         setup=_gate_runs("stripped-hashes"), intact=("gate-ref", "gate-stripped-hashes")),
    # writes only where asked
    Case("run-output-not-a-run", [*RUN, *M, "--output", "{w}/userdir"], ("{w}/userdir", "not a run"),
         setup=_user_files, intact=("userdir",)),
    Case("run-output-not-a-job", [*RUN, "--model", "tiny-full,tiny-swa", "--output", "{w}/userdir"],
         ("{w}/userdir", "not a job's results"), setup=_user_files, intact=("userdir",)),
    Case("run-output-empty", [*RUN, *M, "--output", ""], ("--output", "'' is empty")),
    Case("run-resume-through-link", [*RUN, *M, "--output", "{w}/linked-run"], ("samples.jsonl", "symbolic link"),
         setup=_linked_run, intact=("victim.txt",)),
    Case("score-output-is-input", [*SCORE, "{w}/preds.jsonl", "--output", "{w}/preds.jsonl"],
         ("is the predictions file",), intact=("preds.jsonl",)),
    Case("score-output-link", [*SCORE, "{w}/preds.jsonl", "--output", "{w}/link.jsonl"], ("symbolic link",),
         setup=_user_files, intact=("victim.txt",)),
    Case("score-output-empty", [*SCORE, "{w}/preds.jsonl", "--output", ""], ("--output '' is empty",)),
    Case("export-label-dotdot", ["export-lm-eval", "{w}/dotdot-run", "--output", "{w}/export/inner"],
         ("run label '..'", "cannot name"), setup=_dotdot_run, absent="export"),
    # readers: any line, and sizes over their limits
    Case("score-deep-nesting", [*SCORE, "{w}/deep.jsonl"], ("nested too deeply",), setup=_user_files),
    Case("score-line-too-long", [*SCORE, "{w}/long.jsonl"], ("long.jsonl:1", "longer than 1,000 bytes"),
         setup=_short_lines),
    Case("run-batch-size-huge", [*RUN, *M, "--batch-size", "100000000", "--output", "{w}/out-batch"],
         ("--batch-size 100000000", "1024"), absent="out-batch"),
    Case("run-length-huge", ["run", *M, "--tasks", "synthetic:passkey@9999999k", "--output", "{w}/out-length"],
         ("'9999999k'", "over the limit of 4,194,304"), absent="out-length"),
    Case("run-data-deep-nesting", ["run", *M, "--tasks", "infinitebench:passkey", "--limit", "1", "--data-dir",
                                   "{w}/ib-deep", *OUT], ("ib-deep/passkey.jsonl:1", "nested too deeply"),
         setup=_bad_data),
    Case("run-data-record-without-context", ["run", *M, "--tasks", "infinitebench:passkey", "--limit", "1",
                                             "--data-dir", "{w}/ib-no-context", *OUT],
         ("InfiniteBench passkey record 0", "'context' must be non-empty text, got missing"), setup=_bad_data),
    # finite or failed
    Case("run-ahn-checkpoint-non-finite", [*RUN, *M, "--method", "ahn-gdn", "--ahn-checkpoint", "{w}/nanahn", *OUT],
         ("non-finite values (NaN or inf)",), setup=_nan_checkpoint),
    # plot, table
    Case("plot-missing-run", ["plot", "{w}/nope"], ("{w}/nope", "not a run folder")),
    Case("plot-output-read-only", ["plot", "{w}/runA", "--output", READ_ONLY], (READ_ONLY, "cannot write there")),
    Case("plot-output-disk-full", ["plot", "{w}/runA", "--output", "{w}/plots-full"],
         ("{w}/plots-full", "the disk is full"), setup=_full_disk),
    Case("table-output-read-only", ["table", "--output", f"{READ_ONLY}/t.md"], (READ_ONLY, "cannot write")),
    Case("table-output-disk-full", ["table", "--output", "/dev/full"], ("/dev/full", "the disk is full")),
    Case("table-runs-missing", ["table", "--runs", "{w}/nope", "--output", "{w}/t.md"], ("{w}/nope", "no such run")),
    Case("table-runs-not-paper", ["table", "--runs", "{w}/runA", "--output", "{w}/t.md"],
         ("{w}/runA", "paper preset")),
    # lm-eval
    Case("lm-eval-unknown-preset", [*LM, "preset=nosuch"], ("'nosuch'", "tiny-swa")),
    Case("lm-eval-unknown-model-arg", [*LM, "preset=tiny-swa,foo=1"], ("['foo']", "preset, pretrained")),
    Case("lm-eval-bad-truncation", [*LM, "preset=tiny-swa,truncation=sideways"], ("'sideways'", "middle")),
    Case("lm-eval-model-args-format", [*LM, "nonsense"], ("'nonsense'", "key=value")),
    Case("lm-eval-unknown-task", ["lm-eval", "run", "--model", "ahn-harness", "--model_args", "preset=tiny-swa",
                                  "--tasks", "nosuchtask"], ("nosuchtask", "lm-eval ls tasks")),
    Case("lm-eval-include-path-is-code", [*LM, "preset=tiny-swa", "--include_path", "{w}"],
         ("--include_path {w}", "can run code", "--allow-include-path-code")),
    Case("lm-eval-device-conflict", [*LM, "preset=tiny-swa,device=cpu", "--device", "cuda:0"],
         ("--device cuda:0 and model argument device=cpu differ",)),
    Case("lm-eval-not-installed", [*LM, "preset=tiny-swa"], ("lm-eval", "pip install"), setup=_no_lm_eval),
    # python -m ahn.train
    Case("train-config-missing", ["train", "--config", "{w}/nope.json"], ("{w}/nope.json", "does not exist")),
    Case("train-config-invalid-json", ["train", "--config", "{w}/bad.json"], ("{w}/bad.json", "not valid JSON")),
    Case("train-unknown-key", ["train", "nosuchkey=1"], ("nosuchkey", "valid keys")),
    Case("train-bad-number", ["train", "optim.lr=abc"], ("optim.lr", "'abc'", "number")),
    Case("train-bad-int-flag", ["train", "--max-steps", "abc"], ("--max-steps", "'abc'")),
    Case("train-base-missing", [*TRAIN, "base={w}/nope", "--dry-run"], ("{w}/nope", "model folder")),
    Case("train-base-truncated", [*TRAIN, "base={w}/truncated", "--dry-run"], ("{w}/truncated", "cannot load")),
    Case("train-resume-unsafe-pickle", [*TRAIN, "base={w}/model", "resume={w}/evil-resume"],
         ("evil-resume/trainer_state.pt", "GLOBAL posix.mkdir"), absent="pwned"),
    Case("train-lr-infinity", [*TRAIN, "optim.lr=Infinity"], ("optim.lr", "finite number", "inf"),
         absent="train-out"),
    Case("train-weight-decay-nan", [*TRAIN, "optim.weight_decay=NaN"], ("optim.weight_decay", "finite number"),
         absent="train-out"),
    Case("train-config-list", ["train", "--config", "{w}/list.json"], ("{w}/list.json", "JSON object", "list"),
         setup=_train_files),
    Case("train-config-not-utf8", ["train", "--config", "{w}/latin1.json"], ("{w}/latin1.json", "not UTF-8"),
         setup=_train_files),
    Case("train-config-deep", ["train", "--config", "{w}/deep.json"], ("{w}/deep.json", "nests too deeply"),
         setup=_train_files),
    Case("train-data-binary", [*TRAIN[:1], "data.source=jsonl", "data.path={w}/binary.jsonl", "base={w}/model",
                               "output_dir={w}/train-out", "--dry-run"], ("{w}/binary.jsonl:1", "not valid UTF-8"),
         setup=_train_files),
    Case("train-device-unknown", [*TRAIN, "base={w}/model", "device=nosuch"], ("device='nosuch'", "auto, cpu, cuda"),
         absent="train-out"),
    Case("train-output-read-only", ["train", "data.source=synthetic", "data.seq_len=128", "base={w}/model",
                                    f"output_dir={READ_ONLY}", "steps=1"], (READ_ONLY, "output_dir")),
]


def _subst(text: str, w: Path) -> str:
    return text.replace("{w}", str(w))


def _invoke(argv: list[str]) -> int:
    if argv[0] == "train":
        from ahn.train.__main__ import main as train_main

        return train_main(argv[1:])
    from harness.cli import main

    loggers = [logging.getLogger()] + [v for v in logging.root.manager.loggerDict.values()
                                       if isinstance(v, logging.Logger)]
    before = {id(lg): list(lg.handlers) for lg in loggers}
    try:
        return main(argv)
    finally:  # lm-eval adds stream handlers bound to this test's captured stderr; later tests would write to it
        for lg in [logging.getLogger()] + [v for v in logging.root.manager.loggerDict.values()
                                           if isinstance(v, logging.Logger)]:
            for h in lg.handlers[:]:
                if h not in before.get(id(lg), []):
                    lg.removeHandler(h)


def test_at_least_forty_cases_over_every_command() -> None:
    """The catalogue's size is asserted so that a case cannot silently disappear."""
    assert len(CASES) >= 132
    commands = {c.argv[0] for c in CASES}
    assert commands == {"run", "score", "compare", "plot", "table", "info", "list", "lm-eval", "train",
                        "export-lm-eval"}
    assert len([c for c in CASES if c.skip is None]) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_error_line(case: Case, world: Path, capsys, monkeypatch, request) -> None:
    if case.skip:
        pytest.skip(case.skip)
    if case.argv[0] == "lm-eval":
        request.getfixturevalue("lm_eval_builtin_tasks_indexed_once")
    monkeypatch.setenv("AHN_TEST_PWNED", str(world / "pwned"))
    if case.setup is not None:
        case.setup(monkeypatch, world)
    argv = [_subst(a, world) for a in case.argv]
    before = {p: _digest(world / p) for p in case.intact}
    try:
        code = _invoke(argv)
    finally:
        while _HELD:
            _HELD.pop().close()
    err = capsys.readouterr().err
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1, err[-2000:]
    for needle in case.needles:
        assert _subst(needle, world) in err, (needle, err[-2000:])
    if case.absent:
        assert not (world / case.absent).exists(), f"{case.absent} was written by a refused command"
    for p in case.intact:
        assert _digest(world / p) == before[p], f"{p} changed"


def _digest(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or ``path`` itself) with its bytes, links read as their target name."""
    files = [path] if not path.is_dir() or path.is_symlink() else sorted(path.rglob("*"))
    return {str(f): (b"->" + os.readlink(f).encode() if f.is_symlink() else f.read_bytes())
            for f in files if f.is_symlink() or f.is_file()}


SUBPROCESS_CASES = ["run-device-unknown", "run-weights-truncated", "compare-different-inputs",
                    "train-resume-unsafe-pickle", "score-output-device"]


def test_no_traceback_reaches_stderr_of_a_real_process(world: Path) -> None:
    """The console entry points: same message, exit status 2, no traceback, in real processes."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "AHN_TEST_PWNED": str(world / "pwned-sub"),
           "OMP_NUM_THREADS": "1"}
    by_id = {c.id: c for c in CASES}
    procs = {}
    for cid in SUBPROCESS_CASES:  # started together: the interpreter starts overlap
        argv = [_subst(a, world) for a in by_id[cid].argv]
        module = ["-m", "ahn.train", *argv[1:]] if argv[0] == "train" else ["-m", "harness", *argv]
        procs[cid] = subprocess.Popen([sys.executable, *module], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
    for cid, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (cid, err[-2000:])
        assert "Traceback" not in err and "Traceback" not in out, cid
        assert len([line for line in err.splitlines() if "error:" in line]) == 1, (cid, err[-2000:])
        for needle in by_id[cid].needles:
            assert _subst(needle, world) in err, (cid, needle, err[-2000:])
    assert not (world / "pwned-sub").exists()
