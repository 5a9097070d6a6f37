"""`python -m harness …`: run, list, info, score, compare, table, plot.

Every command explains itself with `--help`; a bad value is reported with the valid ones, without a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import sys
from pathlib import Path

from baselines.registry import method_names
from harness.presets import PRESETS, TINY_DEFAULT, get_preset, resolve_model

#: Modules to import before any command: methods and benchmark families registered from their own files.
PLUGINS_ENV = "AHN_HARNESS_PLUGINS"
DEFAULT_TASKS = "synthetic:passkey@512+1k+2k+4k,synthetic:number_string@512+1k+2k+4k"
DEFAULT_LIMIT = 4
DEFAULT_OUTPUT = Path("runs")

EPILOG = """examples:
  python -m harness run                                   # the embedded default: tiny presets × synthetic tasks
  python -m harness run --model ahn-gdn-3b --tasks lveval  # the paper's AHN-GDN on LV-Eval (needs the weights)
  python -m harness run --model Qwen/Qwen2.5-7B-Instruct --method swa --window 8064 --tasks longbench
  python -m harness info --model ahn-gdn-3b --length 128000 --json
  python -m harness compare runs/A runs/B --max-drop 1.0
  python -m harness table --paper --output leaderboards/paper_tables.md
  python -m harness lm-eval run --model ahn-harness --model_args preset=tiny-ahn-gdn --tasks ...
"""


def _length(text: str) -> int:
    from tasks.registry import parse_length

    try:
        return parse_length(text)
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
    run.add_argument("--window", type=int, help="window in tokens, sinks not counted (paper: 32640)")
    run.add_argument("--sinks", type=int, help="attention sinks (paper: 128)")
    run.add_argument("--chunk", type=int, help="prefill chunk in tokens (default 16384; 512 for tiny presets)")
    run.add_argument("--ahn-checkpoint", help="AHN-only checkpoint (Hub id or folder) for a non-preset model, "
                                              "or a local copy of a preset's (the run keeps the preset's name)")
    run.add_argument("--base-path", help="a local copy of a preset's base model (the run keeps the preset's name, "
                                         "so table --paper accepts it)")
    run.add_argument("--limit", type=int, help="first N samples per task and level (synthetic: per length)")
    run.add_argument("--output", type=Path, help="run folder (one sub-folder per preset when several); "
                                                 "the same command resumes it")
    run.add_argument("--data-dir", help="local copy of the benchmark files (no Hub access)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, …")
    run.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), bfloat16, float32")
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
    _console_flags(run)

    lst = sub.add_parser("list", help="presets, methods and task families")
    lst.add_argument("what", nargs="?", default="all", choices=["all", "presets", "methods", "tasks"])

    info = sub.add_parser("info", help="parameters, FLOPs and cache bytes without loading weights")
    info.add_argument("--model", required=True, help="a preset, or a local folder / cached Hub id with --method")
    info.add_argument("--method", help="memory method for a non-preset model: " + ", ".join(method_names()))
    info.add_argument("--length", type=_length, required=True, help="sequence length: 128000, 128k, …")
    info.add_argument("--window", type=int)
    info.add_argument("--sinks", type=int)
    info.add_argument("--chunk", type=int, help="prefill chunk for the 'actual' FLOPs (default: the preset's)")
    info.add_argument("--dtype-bytes", type=int, default=2, help="KV cache bytes per element (actual model)")
    info.add_argument("--json", action="store_true", help="one JSON object")

    sub.add_parser("score", help="score a predictions file (official formats)", add_help=False)
    sub.add_parser("download", help="fetch models, AHN checkpoints and benchmark files at pinned revisions",
                   add_help=False)
    sub.add_parser("compare", help="paired comparison of two runs; a CI regression gate", add_help=False)
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

    plot = sub.add_parser("plot", help="PNG + SVG figures of one or more runs")
    plot.add_argument("runs", nargs="+", type=Path)
    plot.add_argument("--output", type=Path, help="folder for the figures (default: <first run>/plots)")
    _console_flags(plot)
    return parser


def _console_flags(sub: argparse.ArgumentParser) -> None:
    """--quiet / --verbose / --[no-]progress (harness.console)."""
    sub.add_argument("-q", "--quiet", action="store_true",
                     help="errors only; standard output carries just the results paths")
    sub.add_argument("-v", "--verbose", action="store_true", help="debug messages (and transformers' info)")
    sub.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bars (default: only when standard error is a terminal); --no-progress "
                          "also hides transformers' weight-loading bar")


def _cmd_list(what: str) -> int:
    from tasks.registry import FAMILIES

    if what in ("all", "presets"):
        print("presets:")
        for p in PRESETS.values():
            print(f"  {p.name:<22} {p.description}")
    if what in ("all", "methods"):
        print("methods: " + ", ".join(method_names()))
    if what in ("all", "tasks"):
        print("task families: " + ", ".join(FAMILIES) + "  (e.g. lveval:factrecall_en@128k)")
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
    from baselines.costs import estimate
    from harness.preflight import check_int

    _check_method_settings(args)
    check_int("--length", args.length, 1)
    check_int("--dtype-bytes", args.dtype_bytes, 1)
    preset = resolve_model(args.model, args.method, args.sinks, args.window, chunk_size=args.chunk)
    dims = _dims_for(preset)
    method = preset.method
    report = estimate(dims, method, args.length, preset.sinks or 0, preset.window or 1,
                      chunk_size=preset.chunk_size, dtype_bytes=args.dtype_bytes)
    doc = {"model": preset.name, "base": preset.base or preset.model, "method": method, "length": args.length,
           "sinks": preset.sinks, "window": preset.window, **report.as_dict()}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    from harness.summary import si

    print(f"{preset.name}: {method} on {doc['base']} at {args.length:,} tokens "
          f"(sinks {preset.sinks}, window {preset.window})")
    print(f"  extra parameters : {report.params_extra:,}")
    print(f"  FLOPs mixing     : {si(report.flops_mixing)} (paper)   {si(report.flops_mixing_actual)} (actual)")
    print(f"  FLOPs model      : {si(report.flops_model)} (paper)   {si(report.flops_model_actual)} (actual)")
    print(f"  cache            : {si(report.cache_bytes, 'B')} (paper, 4 B/element)   "
          f"{si(report.cache_bytes_actual, 'B')} (actual)")
    return 0


def _check_fast_path_switches() -> None:
    """The environment switches of the fast paths (docs/PERFORMANCE.md), before any weights are read."""
    from ahn import chunk_graphs
    from baselines import fused_layers, split_attention, static_decode
    from harness import preflight

    try:
        static_decode.check_settings()
        split_attention.setting()
        fused_layers.setting()
        fused_layers.rotary_setting()
        chunk_graphs.setting()
    except ValueError as exc:
        raise preflight.SettingsError(str(exc)) from None


def _preflight_run(args) -> tuple[list, str, Path, int | None]:
    """Every setting of `run` checked before any weights are read: presets, numbers, device, dtype, model and
    checkpoint folders, tasks, and a writable output. Returns (presets, tasks, output, limit)."""
    from harness import preflight
    from harness.loading import build_method
    from harness.tiny_seed import resolve_tiny
    from tasks.registry import parse_task_spec

    _check_method_settings(args)
    _check_fast_path_switches()
    preflight.check_int("--limit", args.limit, 1)
    preflight.check_int("--max-new-tokens", args.max_new_tokens, 0)
    preflight.check_int("--batch-size", getattr(args, "batch_size", None), 1)
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
    if all(p.method == "full" for p in presets) and (args.window is not None or args.sinks is not None):
        raise preflight.SettingsError(f"{', '.join(p.name for p in presets)}: full attention keeps every token, so "
                                      "--window and --sinks would be ignored; they apply to the bounded methods "
                                      "(--method swa, ct-max, ct-avg, ahn-gdn, ahn-dn, ahn-mamba2)")
    for preset in presets:
        method = build_method(preset)  # the method's own checks of sinks and window
        if getattr(args, "decode", "auto") == "static" and method.decode_layout(2) is None:
            raise preflight.SettingsError(f"{preset.name}: --decode static: method {preset.method!r} has no static "
                                          "decode layout (its kept tokens are not sinks + one window); use "
                                          "--decode eager or auto")
        if preset.method.startswith("ahn") and not preset.ahn_checkpoint:
            raise preflight.SettingsError(f"{preset.name}: method {preset.method} needs an AHN checkpoint "
                                          "(--ahn-checkpoint FOLDER or Hub id)")
    tiny = all(p.name.startswith("tiny-") for p in presets)
    if args.tasks is not None and not args.tasks.strip():
        raise preflight.SettingsError(f"--tasks {args.tasks!r} selects no task; e.g. --tasks lveval, "
                                      f"--tasks synthetic:passkey@4k (default for tiny presets: {DEFAULT_TASKS})")
    tasks = args.tasks if args.tasks is not None else (DEFAULT_TASKS if tiny else None)
    if tasks is None:
        raise ValueError("--tasks is required for non-tiny models, e.g. --tasks lveval or --tasks infinitebench")
    parse_task_spec(tasks)  # a typo in a task or level fails here, before any weights are loaded
    from harness.availability import check_available

    check_available(presets, tasks, args.data_dir)  # every missing model, checkpoint and data file, in one error
    for preset in presets:  # local folders that exist: readable config and whole weights
        preflight.check_model_folder(preset.model)
        if preset.ahn_checkpoint:
            preflight.check_ahn_folder(preset.ahn_checkpoint)
    limit = args.limit if args.limit is not None else (DEFAULT_LIMIT if tiny and args.tasks is None else None)
    output = args.output or DEFAULT_OUTPUT / ("tiny-default" if tiny and len(presets) > 1 else presets[0].name)
    preflight.check_writable_folder(output)
    return presets, tasks, output, limit


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
    from harness import threads

    threads.apply(args.threads)  # before any weights load; recorded in the manifest's provenance
    settings = RunSettings(tasks=tasks, output=output, limit=limit, data_dir=args.data_dir, seed=args.seed,
                           device=args.device, dtype=args.dtype, chat_template=args.chat_template,
                           max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
                           prompt_set=args.prompt_set, retry_failed=args.retry_failed,
                           progress=args.bars, decode=args.decode, batch_size=args.batch_size)
    dirs = run_presets(presets, settings)
    print(f"results: {output}")
    for d in dirs:
        print(f"  {d}/summary.md")
    if len(dirs) > 1:
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
    from harness.plots import plot_runs
    from harness.preflight import check_writable_folder

    out = args.output or args.runs[0] / "plots"
    for run in args.runs:
        if not (run / "manifest.json").is_file():
            raise ValueError(f"{run}: not a run folder (no manifest.json); pass folders written by harness run")
    check_writable_folder(out)
    for p in plot_runs(args.runs, out):
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


def _dispatch(argv: list[str]) -> int:
    load_plugins()
    if argv and argv[0] == "score":
        from tasks.score_file import main as score_main

        return score_main(argv[1:])
    if argv and argv[0] == "download":
        from harness.download import main as download_main

        return download_main(argv[1:])
    if argv and argv[0] == "compare":
        from harness.compare import main as compare_main

        return compare_main(argv[1:])
    if argv and argv[0] == "export-lm-eval":
        from harness.frame import main as export_main

        return export_main(argv[1:])
    if argv and argv[0] == "export-lm-eval":
        from harness.frame import main as export_main

        return export_main(argv[1:])
    if argv and argv[0] == "lm-eval":
        from harness.lm_eval_bridge import main as lm_eval_main

        lm_eval_main(argv[1:])
        return 0
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
                "run": lambda: _cmd_run(args), "table": lambda: _cmd_table(args), "plot": lambda: _cmd_plot(args)}
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
