"""The second tiny world's runs in one GPU command, time-boxed, packed into a few files under --out.

    python -m studies.tiny_round2_gpu --out "$OUT"                  # questions 1 and 2 (length, capacity)
    python -m studies.tiny_round2_gpu --out "$OUT" --only kv        # question 3, on a base of its own
    python -m studies.tiny_round2_gpu --out /tmp/r2 --smoke --only kv   # CPU check of the whole pipeline (minutes)

In order of value, all under one wall-clock deadline (``--budget`` seconds from the start):

1. **length** (question 1): the seven tiny presets on passkey and number_string at 1k-32k, ``--samples`` per
   point, through a pool of ``--workers`` harness processes on the one GPU (tiny models are launch-bound, so
   several processes share it well). Jobs run shortest length first, so a cut keeps whole short lengths.
2. **capacity-base1**: full attention of the committed base on ``passkey_k{1,2,4,8,16}`` at 4k and 16k: the
   control that it cannot answer them (its retrieval is tied to the wording it was trained on, and it blends
   the digits of two unlabelled pass keys; leaderboards/tiny/NOTES.md), so capacity needs the second base.
3. **base2** (side by side with 1): the second base of the question, trained in the stages of ``BASE_STAGES``
   (``ahn/train/configs``): for capacity the committed base trained on with the labelled pass keys
   (``tiny_base_round2.json``, in ``runs/round2``); for kv the second base trained on kv_retrieval alone, then
   on the mix with dense kv questions, then longer, twice (``tiny_base_round2_kv_long`` → ``_kvmix`` →
   ``_kvmix_long`` → ``_kvmix_long``, in ``runs/round2kv``). Then full attention, sinks + window and CT on it
   (**capacity** or **kv**), and, if the base is a teacher (kv: 95% on kv_retrieval in its own eval, then full
   attention's kv run at 90% (``TEACHER_BAR``) up to 4k, which the AHNs wait for) and at least ``--ahn-min-s`` seconds
   are left, the three AHN cells distilled on it side by side (``AHN_RECIPE``) and evaluated the same way.

Every harness sample is fsynced as it finishes and every stage is bounded by the deadline, so a cut-off keeps
what finished; run folders resume, and ``--reuse`` keeps a second base / AHN already in ``--work`` (a follow-up
run: unpack the last ``round2_models.tar.gz`` into ``runs/round2/``, or copy ``leaderboards/tiny/round2/base``
there) instead of training it again, and resumes an AHN whose schedule a deadline cut. Written under --out (at most 8 files): ``round2_runs.tar.gz`` (the run folders: manifest,
samples, summaries; unpack into leaderboards/tiny/round2/), ``round2_models.tar.gz`` (base2, its AHNs and the
AHN trainers' latest checkpoints: an AHN cut by the deadline is not evaluated, and resumes from there in a
follow-up run), ``round2_logs.tar.gz`` (training and worker logs) and ``round2_timeline.json`` (what ran,
when, exit codes). Then ``python -m studies.check_round2 {length,capacity,kv} leaderboards/tiny/round2/<q>``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LENGTH_TASKS = ("passkey", "number_string")
LENGTHS = ("1k", "2k", "4k", "8k", "16k", "32k")
CAPACITY_LENGTHS = ("4k", "16k")
KV_LENGTHS = ("1k", "2k", "4k", "8k")
SUFFIXES = ("full", "swa", "ct-max", "ct-avg", "ahn-gdn", "ahn-dn", "ahn-mamba2")
CELLS = ("gdn", "dn", "mamba2")
ENV = {"AHN_HARNESS_FLEX": "0",  # dense SDPA masks: no FlexAttention compile in every process
       "AHN_HARNESS_AHN_BACKEND": "reference",  # the PyTorch cells the tiny AHNs were trained through
       "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
       "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}  # the command's output tail stays readable


QUESTIONS = ("length", "capacity", "kv")
CONFIGS = REPO / "ahn" / "train" / "configs"
# The base each question's AHNs distil from, as training stages (each starts from the one before; the first from
# its config's init_from), the AHNs' recipe, and the bar the base must clear before AHNs are trained on it.
BASE_STAGES = {
    "capacity": ("tiny_base_round2.json",),
    # kv_retrieval alone, then the second base's mix with dense kv questions, then longer, twice (the first time left
    # it at 84% at 4k in `harness run`, the second at 97%): leaderboards/tiny/NOTES.md
    "kv": ("tiny_base_round2_kv_long.json", "tiny_base_round2_kvmix.json", "tiny_base_round2_kvmix_long.json",
           "tiny_base_round2_kvmix_long.json"),
}
AHN_RECIPE = {"capacity": "tiny_ahn_round2.json", "kv": "tiny_ahn_round2_kv.json"}
# Distilling a teacher that cannot answer wasted 2026-12-06's cells, so kv's AHNs wait for two checks: this one on
# the trainer's own eval (free, and above TEACHER_BAR's 90%: a base at 97% there, 4k, 32 prompts, gave 84% in
# `harness run`; leaderboards/tiny/NOTES.md), then full attention's kv run itself against that bar
# (`teacher_answers`, studies.round2.TEACHER_BAR).
TRAINER_EVAL_BAR = {"kv": ("kv_retrieval", 0.95)}


def _questions(text: str) -> tuple[str, ...]:
    names = tuple(q for q in text.split(",") if q)
    bad = [q for q in names if q not in QUESTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown question(s) {bad or text!r}; valid: {', '.join(QUESTIONS)}")
    return names


def world_of(want: set[str]) -> str:
    """Which second base the wanted questions run on: capacity and kv have bases of their own."""
    if {"capacity", "kv"} <= want:
        raise SystemExit("capacity and kv run on different second bases: run them as two commands, --only capacity "
                         "and --only kv (each with its own --work)")
    return "kv" if "kv" in want else "capacity"


def base_commands(world: str, work: Path, overrides: list[str], reuse: bool = False) -> list[list[str]]:
    """One ``tiny_base`` command per training stage of ``world``'s base; the last writes ``work/base``. With
    ``reuse`` a stage whose output is already saved is skipped, so a base whose stages outlast one command
    (kv: 150 + 150 + 400 + 400 s) is finished by the next ones."""
    stages = BASE_STAGES[world]
    outs = [work / f"base-{chr(ord('a') + i)}" for i in range(len(stages) - 1)] + [work / "base"]
    cmds = [(out, [sys.executable, "-m", "ahn.train.tiny_base", "--config", str(CONFIGS / name), f"output_dir={out}",
                   *([f"init_from={outs[i - 1]}"] if i else []), *overrides])
            for i, (name, out) in enumerate(zip(stages, outs))]
    return [cmd for out, cmd in cmds if not (reuse and (out / "model.safetensors").exists())]


def teacher_ready(world: str, eval_json: Path) -> bool:
    """The pre-check: the base's own eval has every length of the bar's task at or above the bar."""
    if world not in TRAINER_EVAL_BAR:
        return True
    task, bar = TRAINER_EVAL_BAR[world]
    if not eval_json.exists():
        return False
    acc = json.loads(eval_json.read_text()).get("accuracy") or {}
    scores = [v for k, v in acc.items() if k.split("@")[0] == task]
    return bool(scores) and min(scores) >= bar


def teacher_answers(runs: Path) -> bool:
    """The check that counts: full attention's kv_retrieval runs under ``runs`` reach TEACHER_BAR at every
    length up to the training length, as `python -m studies.check_round2 kv` reads them (False if there are none)."""
    from harness.store import RunError
    from studies.round2 import collect, kv_report

    try:
        return bool(kv_report(collect(runs), n_boot=1)["teacher_ok"])
    except RunError:
        return False


def _ks() -> tuple[int, ...]:
    from tasks.synthetic.multi_needle import KS

    return KS


def capacity_spec(lengths: tuple[str, ...], k: int) -> str:
    return f"synthetic:passkey_k{k}@{'+'.join(lengths)}"


def length_jobs(root: Path, samples: int, lengths: tuple[str, ...]) -> list[dict]:
    """One job per (task, preset); passkey for every preset before number_string."""
    return [{"question": "length", "preset": f"tiny-{s}", "tasks": f"synthetic:{t}@{'+'.join(lengths)}",
             "limit": samples, "out": str(root / "length" / f"tiny-{s}" / t)} for t in LENGTH_TASKS for s in SUFFIXES]


def capacity_jobs(root: Path, question: str, samples: int, lengths: tuple[str, ...], suffixes: tuple[str, ...],
                  world: dict | None = None) -> list[dict]:
    """One job per (k, method); ``world`` (base2) points the methods at another base and AHN folder."""
    jobs = []
    for k in _ks():
        for s in suffixes:
            job = {"question": question, "preset": f"tiny-{s}", "tasks": capacity_spec(lengths, k), "limit": samples,
                   "out": str(root / question / f"tiny{'2' if world else ''}-{s}" / f"k{k}")}
            jobs.append({**job, **({"world": world} if world else {})})
    return jobs


def kv_jobs(root: Path, samples: int, lengths: tuple[str, ...], suffixes: tuple[str, ...], world: dict) -> list[dict]:
    return [{"question": "kv", "preset": f"tiny-{s}", "tasks": f"synthetic:kv_retrieval@{'+'.join(lengths)}",
             "limit": samples, "out": str(root / "kv" / f"tiny2-{s}"), "world": world} for s in suffixes]


def _preset(job: dict):
    from harness.presets import get_preset

    preset = get_preset(job["preset"])
    world = job.get("world")
    if not world:
        return preset
    suffix = job["preset"].removeprefix("tiny-")
    ckpt = str(Path(world["root"]) / suffix) if preset.ahn_checkpoint else None
    return preset.with_overrides(name=f"tiny2-{suffix}", model=world["base"], ahn_checkpoint=ckpt,
                                 description=preset.description.replace("tiny byte-level base", "second tiny base"))


def run_job(job: dict) -> dict:
    """One harness run folder (resumable); never raises: the error comes back in the result."""
    t0 = time.time()
    try:
        from harness.runner import RunSettings, run_preset

        out = Path(job["out"])
        settings = RunSettings(tasks=job["tasks"], output=out, limit=job["limit"], seed=0, device="auto",
                               dtype=job.get("dtype", "float32"), progress=False, decode=job.get("decode", "eager"))
        run_preset(_preset(job), settings, out)
        return {**job, "status": "ok", "seconds": time.time() - t0}
    except Exception as exc:  # noqa: BLE001 - one failed job must not stop the others
        return {**job, "status": "failed", "seconds": time.time() - t0,
                "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}


def cell_complete(work: Path, cell: str) -> bool:
    """The AHN cell in ``work`` finished its schedule. One cut by the time budget is resumed by a later run, not
    evaluated: the 2026-12-06 cells, cut at 326-367 of 400 updates, were evaluated and scored like untrained ones."""
    summary = work / f"ahn-{cell}" / "train_summary.json"
    return (work / f"ahn-{cell}" / "model.safetensors").exists() and summary.exists() and bool(
        json.loads(summary.read_text()).get("complete"))


class Timeline:
    def __init__(self, path: Path, t0: float) -> None:
        self.path, self.t0, self.events = path, t0, []

    def add(self, what: str, **info) -> None:
        row = {"t": round(time.time() - self.t0, 1), "what": what, **info}
        self.events.append(row)
        print(f"[round2 {row['t']:6.1f}s] {what} {json.dumps(info, default=str)[:300]}", file=sys.stderr, flush=True)
        self.path.write_text(json.dumps(self.events, indent=1, default=str) + "\n")


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:  # the child keeps its own handle
        return subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **ENV},
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _tar(path: Path, files: list[tuple[Path, str]]) -> None:
    """Write a .tar.gz atomically (a cut mid-write leaves the previous one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for f, arcname in files:
            tar.add(f, arcname=arcname)
    os.replace(tmp, path)


def pack(work: Path, out: Path, timeline: Timeline, models: bool = True) -> None:
    """At most four files under ``out``: runs, models, logs, timeline. Safe to run again (each file replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    keep = {"manifest.json", "samples.jsonl", "summary.json", "summary.md"}
    runs = [(f, str(f.relative_to(work))) for q in ("length", "capacity-base1", "capacity", "kv") if (work / q).exists()
            for f in sorted((work / q).rglob("*")) if f.is_file() and (f.name in keep or f.name.startswith("samples."))]
    _tar(out / "round2_runs.tar.gz", runs)
    if models:
        _tar(out / "round2_models.tar.gz", [
            (f, str(f.relative_to(work))) for name in ("base", *(f"ahn-{c}" for c in CELLS), "ckpt")
            if (work / name).exists()
            for f in sorted((work / name).rglob("*")) if f.is_file() and not f.name.endswith(".log")])
    _tar(out / "round2_logs.tar.gz", [(f, str(f.relative_to(work))) for f in sorted(work.rglob("*.log"))])
    timeline.add("packed", files=sorted(p.name for p in out.iterdir() if not p.name.startswith(".")))


class Interrupted(Exception):
    """SIGTERM (e.g. from `timeout`): stop the stages and pack what finished."""


def _on_term(signum, frame) -> None:
    raise Interrupted()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the packed results ($OUT on the device)")
    ap.add_argument("--work", type=Path, help="run folders and models (default: runs/round2, or runs/round2kv "
                    "for --only kv)")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds from the start until everything stops")
    ap.add_argument("--workers", type=int, default=9, help="harness processes sharing the GPU")
    ap.add_argument("--samples", type=int, default=32, help="samples per task, length (and k)")
    ap.add_argument("--base-train-s", type=float,
                    help="training time of each stage of the second base (default: each config's time_budget_s)")
    ap.add_argument("--base-workers", type=int, default=5, help="data workers of the second base's training")
    ap.add_argument("--ahn-min-s", type=float, default=200.0, help="distil the AHNs only if this much is left")
    ap.add_argument("--ahn-max-s", type=float, default=190.0, help="longest AHN training")
    ap.add_argument("--eval-reserve-s", type=float, default=80.0, help="time kept for evaluating the AHNs on the second base")
    ap.add_argument("--only", type=_questions, help="these questions' runs only (comma-separated: length, capacity, "
                    "kv; e.g. capacity,kv on the GPU while length runs on CPUs elsewhere)")
    ap.add_argument("--decode", default="eager", choices=["eager", "static", "auto"],
                    help="harness decode path (eager: one sample at a time, each record fsynced as it ends, as in "
                         "the first tiny world; the answers are a few tokens, so prefill sets the time)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep a second base / AHN cell already in --work (e.g. copied from leaderboards/tiny/round2) "
                         "instead of training it again; finished samples are always kept (runs resume)")
    ap.add_argument("--ahn-init", metavar="DIR",
                    help="warm-start each AHN cell from DIR/ahn-<cell> (a second schedule after a first one ended "
                         "unsettled; give it its own --work so its runs do not resume the first schedule's)")
    ap.add_argument("--ahn-steps", type=int, help="the AHN schedule's length in updates (default: the config's)")
    ap.add_argument("--skip-base1-control", action="store_true", help="no capacity runs on the committed base")
    ap.add_argument("--smoke", action="store_true", help="CPU check: 2 samples, short lengths, a few training steps")
    args = ap.parse_args(argv)

    t0 = time.time()
    deadline = t0 + args.budget
    want = set(args.only) if args.only else {"length", "capacity"}
    world_name = world_of(want)
    work = (args.work or REPO / "runs" / ("round2kv" if world_name == "kv" else "round2")).resolve()
    out = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    tl = Timeline(out / "round2_timeline.json", t0)
    os.environ.update(ENV)
    lengths, cap_lengths, kv_lengths = LENGTHS, CAPACITY_LENGTHS, KV_LENGTHS
    samples = args.samples
    base_over: list[str] = [*([f"time_budget_s={args.base_train_s}"] if args.base_train_s else []),
                            f"num_workers={args.base_workers}"]
    ahn_over: list[str] = ["data.num_workers=2"]
    if args.smoke:
        lengths, cap_lengths, kv_lengths, samples = ("1k", "2k"), ("2k",), ("1k",), 2
        base_over = ["steps=2", "seq_lens=[512]", "seq_len_weights=null", "tokens_per_step=1024", "eval_every=2",
                     "eval_lengths=[512]", "eval_samples=2", "final_eval_lengths=[]", "num_workers=0",
                     "length_warmup=0.0", "log_every=1", "warmup_steps=1", "time_budget_s=null",
                     "eval_tasks=[\"passkey\"]"]
        ahn_over = ["steps=2", "data.seq_len=1024", "data.min_len=800", "micro_batch_size=1", "data.num_workers=0",
                    "save_every=0", "log_every=1"]
    tl.add("start", budget=args.budget, workers=args.workers, samples=samples, smoke=args.smoke, want=sorted(want))

    ctx = mp.get_context("spawn")
    pool = ctx.Pool(args.workers)
    pending: list = []

    def submit(jobs: list[dict]) -> list:
        handles = [pool.apply_async(run_job, ({**job, "decode": args.decode},)) for job in jobs]
        pending.extend(handles)
        if jobs:
            tl.add("submitted", n=len(jobs), question=jobs[0]["question"])
        return handles

    if "length" in want:
        submit(length_jobs(work, samples, lengths))
    base2 = ahns = None
    teacher = None  # kv: full attention's kv run on the new base, which the AHNs wait for
    ahns_due = False
    world = {"base": str(work / "base"), "root": str(work)}
    base2_reused = args.reuse and (work / "base" / "model.safetensors").exists()
    if want & {"capacity", "kv"} and not base2_reused:
        cmds = base_commands(world_name, work, base_over, reuse=args.reuse)
        base2 = _spawn(["bash", "-c", " && ".join(shlex.join(c) for c in cmds)], work / "logs" / "base2_train.log")
        tl.add("base2 started", world=world_name, cmds=cmds)
    if "capacity" in want and not args.skip_base1_control:
        submit(capacity_jobs(work, "capacity-base1", samples, cap_lengths, ("full",)))
    bounded = ("full", "swa", "ct-max", "ct-avg")
    ahn_suffixes = tuple(f"ahn-{c}" for c in CELLS)
    evaluated_ahns = False

    def trained(cell: str) -> bool:
        return cell_complete(work, cell)

    reused_cells = tuple(c for c in CELLS if args.reuse and trained(c))
    base2_pending = base2_reused and bool(want & {"capacity", "kv"})

    def step() -> bool:
        """Advance the stages once; False when nothing is left to wait for."""
        nonlocal base2, ahns, evaluated_ahns, base2_pending, teacher, ahns_due
        if base2_pending or (base2 is not None and base2.poll() is not None):
            code = 0 if base2_pending else base2.returncode
            base2, base2_pending = None, False
            ok = code == 0 and (work / "base" / "model.safetensors").exists()
            eval_json = work / "base" / "eval.json"
            tl.add("base2 reused" if base2_reused else "base2 finished", exit_code=code,
                   eval=json.loads(eval_json.read_text()) if eval_json.exists() else None)
            if ok:
                pack(work, out, tl)  # the second base comes back even if the command is cut later
                if "capacity" in want:
                    submit(capacity_jobs(work, "capacity", samples, cap_lengths, bounded, world))
                if "kv" in want:
                    handles = submit(kv_jobs(work, samples, kv_lengths, bounded, world))  # full attention first
                    if world_name in TRAINER_EVAL_BAR and not args.smoke:
                        teacher = handles[0]
                if not (args.smoke or teacher_ready(world_name, eval_json)):
                    tl.add("ahn2 skipped: the base's own eval misses the bar", bar=TRAINER_EVAL_BAR[world_name])
                    teacher = None
                else:
                    ahns_due = True
        if ahns_due and (teacher is None or teacher.ready()):
            ahns_due = False
            left = deadline - time.time()
            if teacher is not None and not teacher_answers(work / "kv" / "tiny2-full"):
                tl.add("ahn2 skipped: full attention misses TEACHER_BAR on kv_retrieval", runs="kv/tiny2-full")
            elif left >= args.ahn_min_s or args.smoke or len(reused_cells) == len(CELLS):
                budget = max(30.0, min(args.ahn_max_s, left - args.eval_reserve_s))
                ahns = {}
                for c in (c for c in CELLS if c not in reused_cells):
                    cmd = [sys.executable, "-m", "ahn.train", "--config",
                           str(CONFIGS / AHN_RECIPE[world_name]), f"cell={c}",
                           f"base={work / 'base'}", f"output_dir={work / f'ahn-{c}'}",
                           f"checkpoint_dir={work / 'ckpt' / f'ahn-{c}'}",
                           # a cut run continues from its checkpoint (packed with the models) under --reuse
                           "resume=auto" if args.reuse else "resume=never",
                           *([f"init_ahn={Path(args.ahn_init) / f'ahn-{c}'}"] if args.ahn_init else []),
                           *([f"steps={args.ahn_steps}"] if args.ahn_steps else []),
                           f"time_budget_s={budget:.0f}", *ahn_over]
                    ahns[c] = _spawn(cmd, work / "logs" / f"ahn-{c}_train.log")
                tl.add("ahn2 started", time_budget_s=round(budget), left=round(left), reused=reused_cells)
            else:
                tl.add("ahn2 skipped", left=round(left), needed=args.ahn_min_s)
        if ahns is not None and all(p.poll() is not None for p in ahns.values()) and not evaluated_ahns:
            evaluated_ahns = True
            done = [c for c in CELLS if c in reused_cells or (c in ahns and ahns[c].returncode == 0 and trained(c))]
            tl.add("ahn2 finished", exit_codes={c: p.returncode for c, p in ahns.items()}, complete=done,
                   resume_later=[c for c in ahns if c not in done])
            pack(work, out, tl)
            cells = tuple(s for s in ahn_suffixes if s.removeprefix("ahn-") in done)
            if "capacity" in want:
                submit(capacity_jobs(work, "capacity", samples, cap_lengths, cells, world))
            if "kv" in want:
                submit(kv_jobs(work, samples, kv_lengths, cells, world))
        still_training = (base2 is not None or base2_pending or ahns_due
                          or (ahns is not None and not evaluated_ahns))
        return bool(still_training or not all(r.ready() for r in pending))

    signal.signal(signal.SIGTERM, _on_term)
    last_pack = time.time()
    try:
        waiting = True
        while waiting and time.time() < deadline:
            waiting = step()
            if time.time() - last_pack > 60:  # a hard kill of the command still returns what was packed
                pack(work, out, tl, models=False)
                last_pack = time.time()
            time.sleep(2)
    except Interrupted:
        tl.add("interrupted (SIGTERM)")
    finished = [r.get() for r in pending if r.ready()]
    for r in finished:
        if r["status"] != "ok":
            tl.add("job failed", out=r["out"], error=r["error"], traceback=r["traceback"])
    tl.add("stopping", jobs_done=len(finished), jobs_cut=len(pending) - len(finished),
           seconds_by_question={q: round(sum(r["seconds"] for r in finished if r["question"] == q))
                                for q in ("length", "capacity-base1", "capacity", "kv")},
           jobs=[{k: r[k] for k in ("out", "status", "seconds")} for r in finished])
    pool.terminate()
    pool.join()
    for proc in [base2, *(ahns or {}).values()]:
        if proc is not None:
            _stop(proc)
    pack(work, out, tl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
