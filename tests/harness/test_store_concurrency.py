"""Processes starting runs into one fresh folder at the same instant never mix runs.

Each round forks several writers at a barrier, all into one fresh folder, with equal or different settings.
Every outcome must be a clean refusal (``RunError``, nothing written) or one consistent run: every record
carries the settings of the manifest, and the manifest lists exactly one ``resumes`` entry per successful
writer after the first (a writer that started while another held the run must not record a resume).
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from harness.provenance import make_manifest
from harness.store import RunError, RunStore, iter_records, load_run

WRITERS = 4
ROUNDS = 12
RECORDS = 3


def _writer(path: Path, manifest: dict, tag: int, start, hold, queue) -> None:
    start.wait()
    try:
        store = RunStore.create_or_resume(path, manifest)
    except RunError as e:
        queue.put((tag, "refused", type(e).__name__))
        if hold is not None:
            hold.wait()
        return
    for i in range(RECORDS):
        store.append({"key": f"w{tag}-{i}", "window": manifest["config"]["window"], "status": "ok"})
    queue.put((tag, "ok", store.resumed))
    if hold is not None:  # keep the run open until every writer has tried
        hold.wait()
    store.close()


def _round(root: Path, windows: list[int], hold_open: bool) -> tuple[list[tuple], dict, list[dict]]:
    ctx = mp.get_context("fork")
    manifests = {w: make_manifest({"window": w}, argv=["harness", "run"]) for w in set(windows)}
    start, queue = ctx.Barrier(len(windows)), ctx.Queue()
    hold = ctx.Barrier(len(windows)) if hold_open else None
    procs = [ctx.Process(target=_writer, args=(root, manifests[w], i, start, hold, queue))
             for i, w in enumerate(windows)]
    for p in procs:
        p.start()
    outcomes = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    run = load_run(root)
    return outcomes, run.manifest, list(iter_records(root))


@pytest.mark.parametrize("hold_open", [True, False], ids=["writers-overlap", "writers-may-follow"])
@pytest.mark.parametrize("settings", ["different", "equal"])
def test_simultaneous_starts_never_mix(tmp_path: Path, settings: str, hold_open: bool) -> None:
    windows = [480, 256, 480, 256] if settings == "different" else [480] * WRITERS
    for r in range(ROUNDS):
        root = tmp_path / f"round{r}"
        outcomes, manifest, raw = _round(root, windows, hold_open)
        ok = [o for o in outcomes if o[1] == "ok"]
        assert ok, outcomes  # someone always gets the run
        # one consistent run: every line in the folder carries the manifest's settings, and only the
        # successful writers wrote (a refused one wrote nothing)
        assert {rec["window"] for rec in raw} == {manifest["config"]["window"]}, (outcomes, manifest["config"])
        assert sorted(rec["key"] for rec in raw) == sorted(f"w{t}-{i}" for t, _, _ in ok for i in range(RECORDS))
        # the writers that succeeded ran the manifest's settings
        assert all(windows[t] == manifest["config"]["window"] for t, _, _ in ok)
        # never a false resume: one entry per successful writer after the first, and only for those
        assert len(manifest.get("resumes", [])) == len(ok) - 1 == sum(resumed for _, _, resumed in ok)
        if hold_open:  # while one writer holds the run, every other is refused
            assert len(ok) == 1
        refusals = {o[2] for o in outcomes if o[1] == "refused"}
        assert refusals <= {"RunError", "ConfigMismatchError"}


def test_sharded_ranks_start_one_run_without_a_resume_entry(tmp_path: Path) -> None:
    """Ranks of one sharded job: only rank 0 creates the manifest, so no rank records a resume."""
    ctx = mp.get_context("fork")
    manifest = make_manifest({"window": 480}, argv=["harness", "run"])
    root = tmp_path / "run"

    def rank_main(rank: int, start) -> None:
        start.wait()
        with RunStore.create_or_resume(root, manifest, rank=rank, world=3) as store:
            store.append({"key": f"r{rank}", "status": "ok"})

    start = ctx.Barrier(3)
    procs = [ctx.Process(target=rank_main, args=(rank, start)) for rank in (2, 1, 0)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    run = load_run(root)
    assert "resumes" not in run.manifest and {r["key"] for r in run.records} == {"r0", "r1", "r2"}


def test_writer_refused_while_the_run_is_open_records_no_resume(tmp_path: Path) -> None:
    """A same-settings start while another process holds the run is refused and leaves the manifest as it was."""
    ctx = mp.get_context("fork")
    manifest = make_manifest({"window": 480}, argv=["harness", "run"])
    root = tmp_path / "run"
    with RunStore.create_or_resume(root, manifest) as store:
        store.append({"key": "a", "window": 480, "status": "ok"})
        before = (root / "manifest.json").read_bytes()
        queue = ctx.Queue()
        start = ctx.Barrier(1)
        procs = [ctx.Process(target=_writer, args=(root, manifest, i, start, None, queue)) for i in range(3)]
        for p in procs:
            p.start()
            p.join(timeout=60)
        outcomes = [queue.get(timeout=10) for _ in procs]
        assert [o[1] for o in outcomes] == ["refused"] * 3
        assert (root / "manifest.json").read_bytes() == before
    assert [r["key"] for r in load_run(root).records] == ["a"]


def test_refused_writer_leaves_an_in_flight_line_alone(tmp_path: Path) -> None:
    """A process that is refused never truncates the tail the running writer is in the middle of writing."""
    ctx = mp.get_context("fork")
    manifest = make_manifest({"window": 480}, argv=["harness", "run"])
    root = tmp_path / "run"
    with RunStore.create_or_resume(root, manifest) as store:
        store.append({"key": "a", "status": "ok"})
        store._fh.write(b'{"key": "b", "stat')  # a line in flight: no newline yet
        store._fh.flush()
        before = (root / "samples.jsonl").read_bytes()
        queue, start = ctx.Queue(), ctx.Barrier(1)
        proc = ctx.Process(target=_writer, args=(root, manifest, 9, start, None, queue))
        proc.start()
        proc.join(timeout=60)
        assert queue.get(timeout=10)[1] == "refused"
        assert (root / "samples.jsonl").read_bytes() == before
