"""The regression gate cannot pass a worse, unfinished or doctored run (the CI gate's own flags).

A is a copy of the committed CPU reference (``leaderboards/tiny/default-run/tiny-full``); B is the same run
doctored one way at a time (``tests/harness/doctored_runs.py``). Every case fails the gate (exit 1 with the
reason on stdout, or exit 2 with one ``error:`` line) and leaves both runs byte-identical.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path

import pytest

from harness.compare import binary_drop_p, main
from harness.store import RunStore, read_manifest
from tests.harness.doctored_runs import CASES, copy_reference, doctor

CI_FLAGS = ["--max-drop", "1.0", "--require-hashes", "--require-identical-ids"]  # scripts/ci_gate.sh's


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _gate(a: Path, b: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str, str]:
    before = (_digest(a), _digest(b))
    code = main([str(a), str(b), *CI_FLAGS, *extra])
    out, err = capsys.readouterr()
    assert (_digest(a), _digest(b)) == before, "the gate wrote into a run"
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def ref(tmp_path: Path) -> Path:
    return copy_reference(tmp_path / "A")


def test_the_reference_carries_hashes_and_ids(ref: Path) -> None:
    """The committed reference is gateable with the CI flags: every record has input hashes and token ids."""
    from tests.harness.doctored_runs import read

    records = read(ref)
    assert len(records) == 32
    for rec in records:
        assert all(isinstance(rec.get(k), str) and len(rec[k]) == 64 for k in
                   ("prompt_sha256", "input_ids_sha256", "answers_sha256")), rec["key"]
        assert isinstance(rec.get("generated_ids"), list) and len(rec["generated_ids"]) == rec["n_generated"]


def test_an_identical_copy_passes(ref: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = _gate(ref, doctor(tmp_path / "B", "same"), capsys)
    assert code == 0, out + err
    assert "PASS" in out and "warning" not in err


@pytest.mark.parametrize("case, needles", [
    ("partial", ("29 key(s) of A missing from B",)),
    ("flipped", ("INSUFFICIENT SAMPLES", "synthetic/passkey @ 2k: -50.00 points", "exact p=0.5")),
    ("other-ids", ("generated different token ids", "synthetic/passkey|512|0")),
])
def test_gate_fails_with_the_reason(ref: Path, tmp_path: Path, capsys: pytest.CaptureFixture, case: str,
                                    needles: tuple[str, ...]) -> None:
    code, out, err = _gate(ref, doctor(tmp_path / "B", case), capsys)
    assert code == 1, out + err
    assert "PASS" not in out and "FAIL" in out
    for needle in needles:
        assert needle in out, (needle, out)


def test_partial_run_fails_either_way_round(ref: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Missing keys fail whichever run lacks them; --allow-missing is the explicit opt-out."""
    b = doctor(tmp_path / "B", "partial")
    assert _gate(b, ref, capsys)[0] == 1
    code, out, _ = _gate(ref, b, capsys, "--allow-missing")
    assert code == 0 and "PASS" in out


@pytest.mark.parametrize("case, needles", [
    ("all-failed", ("zero scored pairs",)),
    ("inflated", ("1000.0", "outside the metric's range [0, 1]")),
    ("edited", ("4 score(s)", "recorded score 1.0, its prediction scores 0.0")),
    ("duplicate", ("1 sample key(s) on more than one line", "synthetic/passkey|512|0")),
    ("stray-shard", ("samples.rank0-of2.jsonl",)),
    ("unparsable", ("1 unparsable line(s)",)),
    ("deep-nesting", ("1 unparsable line(s)",)),
    ("stripped-hashes", ("without input hashes",)),
])
def test_gate_refuses_a_doctored_run(ref: Path, tmp_path: Path, capsys: pytest.CaptureFixture, case: str,
                                     needles: tuple[str, ...]) -> None:
    code, out, err = _gate(ref, doctor(tmp_path / "B", case), capsys)
    assert code == 2, out + err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    assert "PASS" not in out
    for needle in needles:
        assert needle in err, (needle, err)


def test_a_doctored_baseline_is_refused_too(ref: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _gate(doctor(tmp_path / "B", "inflated"), ref, capsys)
    assert code == 2 and "outside the metric's range" in err


def test_run_being_written_is_refused(ref: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A writer holds the samples file (as RunStore does for a whole run); then the create/resume lock."""
    b = doctor(tmp_path / "B", "same")
    with RunStore.create_or_resume(b, read_manifest(b)):
        code, _, err = _gate(ref, b, capsys)
    assert code == 2 and "is being written by another process (samples.jsonl is locked)" in err
    c = doctor(tmp_path / "C", "same")
    with open(c / ".lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        code, _, err = _gate(ref, c, capsys)
    assert code == 2 and "(.lock is locked)" in err


def test_every_doctored_case_is_exercised() -> None:
    assert set(CASES) == {"same", "flipped", "partial", "all-failed", "inflated", "edited", "duplicate",
                          "stray-shard", "unparsable", "deep-nesting", "stripped-hashes", "other-ids"}


def test_exact_test_by_hand() -> None:
    """McNemar's exact p by hand: 2 right->wrong of 2 discordant: 2 * (1/2)^2 = 0.5; 6 of 6: 2/64; 5 of 7
    worse: 2 * (C(7,5)+C(7,6)+C(7,7)) / 2^7 = 2 * 29/128."""
    assert binary_drop_p([[(100, 0), (100, 0), (100, 100), (0, 0)]]) == 0.5
    assert binary_drop_p([[(100, 0)] * 6]) == 2 / 64
    assert binary_drop_p([[(100, 0)] * 5 + [(0, 100)] * 2]) == pytest.approx(2 * 29 / 128)
    assert binary_drop_p([[(100, 100)] * 3]) == 1.0  # nothing discordant
    assert binary_drop_p([[(0, 100)] * 3]) == 1.0  # B better: no evidence of a drop
    assert binary_drop_p([[(50, 0)]]) is None  # not binary: the bootstrap decides


def test_a_real_drop_on_enough_binary_samples_is_a_regression(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """16 passkey samples right in A and wrong in B: exact p = 2/2^16, a regression, not 'insufficient'."""
    from tests.harness.doctored_runs import _wrong, read, write

    a = copy_reference(tmp_path / "A")
    b = copy_reference(tmp_path / "B")
    records = read(b)
    for rec in records:
        if rec["task"] == "synthetic/passkey":
            _wrong(rec)
    write(b, records)
    code, out, _ = _gate(a, b, capsys)
    assert code == 1 and "REGRESSION" in out and "synthetic/passkey @ all: -100.00 points" in out
