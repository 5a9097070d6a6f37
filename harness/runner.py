"""`harness run`: evaluate presets × tasks, one resumable run folder per preset.

Each sample: prompt prepared exactly as its benchmark says (format → truncate → chat template), greedy
generation through the memory method, the official-parity score, analytic costs (paper convention and this
implementation's), the cache bytes measured on the live cache, times and peak memory. Every result line is
fsynced as soon as its sample (or its decode batch) ends, so a crash loses at most the batch in flight; the same command
resumes. Under `torchrun`, rank r takes samples r, r+world, … and rank 0 merges the shards.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from baselines.costs import CostModel
from baselines.engine import DecoderPool, generate, generate_many, static_decode_supported
from baselines.interface import MemoryMethod
from baselines.model_configs import ModelDims
from baselines.registry import cost_model_of
from harness.buckets import bucket_of
from harness.console import tqdm_disable
from harness.hashing import record_hashes
from harness.loading import Loaded, loaded
from harness.presets import Preset
from harness.provenance import make_manifest
from harness.record import SampleRecord
from harness.store import RunStore, merge_shards
from harness.summary import write_summary
from tasks import protocols
from tasks.prompting import prepare, with_max_length
from tasks.registry import load_samples, task_settings
from tasks.sample import Sample
from tasks.scoring import score_detailed

log = logging.getLogger(__name__)


@dataclass
class RunSettings:
    tasks: str
    output: Path
    limit: int | None = None
    data_dir: str | None = None
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    chat_template: str = "auto"  # auto (the task's protocol) | on | off
    max_new_tokens: int | None = None
    repetition_penalty: float | None = None  # None: the model's generation_config
    prompt_set: str = "open"
    retry_failed: bool = False
    progress: bool | None = None  # None: tqdm's rule (a bar on a terminal only)
    decode: str = "auto"  # auto | eager | static (see `decode_plan`)
    batch_size: int | None = None  # rows of the static decoder (None: from free memory)
    protocol: str = "auto"  # auto (the preset's) | paper | official (tasks.protocols)
    max_length: int | None = None  # the truncation budget of every task, in tokens (None: each task's own)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {', '.join(DECODE_MODES)}, got {self.decode!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch size must be an integer >= 1, got {self.batch_size!r}")


DECODE_MODES = ("auto", "eager", "static")
MAX_AUTO_BATCH = 16


def preset_tasks(preset: Preset, settings: RunSettings) -> tuple[str, str]:
    """(protocol, task selection) one preset runs: `--protocol auto` takes the preset's own protocol, so a paper
    preset's `--tasks lveval` is the AHN paper's LV-Eval run (tasks.protocols)."""
    protocol = protocols.resolve(settings.protocol, preset.protocol == "paper")
    return protocol, protocols.apply(settings.tasks, protocol)


def _dist() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        dist.barrier()


def _chat(setting: str, default: bool) -> bool:
    if setting == "auto":
        return default
    if setting in ("on", "off"):
        return setting == "on"
    raise ValueError(f"chat_template must be auto, on or off, got {setting!r}")


def _dims(model) -> ModelDims:
    return ModelDims.from_hf_config(model.config)


Prepared = tuple[SampleRecord, torch.Tensor, int]  # the record so far, the prompt's ids [1, T] (CPU), new tokens
# The tokenizer is used by two threads (the next group's prompts are prepared while the current group runs,
# `_prepared_groups`); a Hugging Face fast tokenizer may change its own settings while encoding, so one at a time.
_TOKENIZER_LOCK = threading.Lock()


def _prepare_record(lo: Loaded, sample: Sample, settings: RunSettings, dims: ModelDims,
                    costs: CostModel) -> Prepared:
    """The prompt as its benchmark prepares it, and the record's fields known before generation. Host work
    only (the ids stay on the CPU), so it can run on a worker thread while the device runs another group."""
    task = task_settings(sample)
    chat = _chat(settings.chat_template, task.chat_template)
    with _TOKENIZER_LOCK:
        prepared = prepare(sample, lo.tokenizer, with_max_length(task.truncation, settings.max_length), chat)
    max_new = settings.max_new_tokens if settings.max_new_tokens is not None else sample.max_new_tokens
    record = SampleRecord(
        key=sample.key, task=sample.task, level=sample.level, id=sample.id,
        prompt_tokens_before=prepared.prompt_tokens_before, prompt_tokens=prepared.prompt_tokens_after,
        truncated=prepared.truncated, chat_template=chat, max_new_tokens=max_new,
        answers=sample.answers, extra=sample.extra,
        **record_hashes(prepared.text, prepared.input_ids, sample.answers),
    )
    record.bucket = bucket_of(record.to_dict())
    cost = costs.estimate(dims, prepared.prompt_tokens_after, chunk_size=lo.preset.chunk_size,
                          dtype_bytes=torch.finfo(lo.dtype).bits // 8)  # the method's own sinks and window
    record.flops_paper, record.flops_actual = cost.flops_model, cost.flops_model_actual
    record.flops_mixing_paper, record.flops_mixing_actual = cost.flops_mixing, cost.flops_mixing_actual
    record.cache_bytes_paper, record.cache_bytes_actual = cost.cache_bytes, cost.cache_bytes_actual
    record.params_extra = cost.params_extra
    return record, torch.tensor([prepared.input_ids]), max_new


def _failed(record: SampleRecord, exc: BaseException, lo: Loaded) -> SampleRecord:
    if lo.device.type == "cuda":
        torch.cuda.empty_cache()
    return record.fail(f"out of memory: {str(exc).splitlines()[0]}")


def _finish_record(record: SampleRecord, result, lo: Loaded, sample: Sample, batch: int) -> SampleRecord:
    if any(getattr(result, "nonfinite_logits", ())):  # argmax of NaN: a prediction of garbage, never a score
        return record.fail("non-finite logits (NaN or inf) after the prefill: non-finite weights in the model "
                           "or AHN checkpoint, or an overflow in this dtype")
    with _TOKENIZER_LOCK:
        prediction = lo.tokenizer.decode(result.tokens[0], skip_special_tokens=True)
    scored = score_detailed(sample.task, prediction, sample.answers, sample.extra)
    record.status, record.error, record.prediction = "ok", None, prediction
    record.score, record.score_note = scored.score, scored.note
    record.n_generated = len(result.tokens[0])
    record.generated_ids = [int(t) for t in result.tokens[0]]
    record.prefill_s, record.decode_s = result.prefill_s, result.decode_s
    record.decode_s_per_token = result.decode_s / max(1, len(result.tokens[0]))
    record.peak_mem_bytes = result.peak_mem_bytes
    record.cache_bytes_measured = result.cache_bytes_after_prefill
    record.cache_bytes_measured_final = result.cache_bytes_final
    record.decode_batch = batch
    return record


def run_sample(lo: Loaded, sample: Sample, settings: RunSettings, dims: ModelDims,
               costs: CostModel | None = None, prepared: Prepared | None = None) -> SampleRecord:
    """One sample end to end; never raises for a sample-level failure (recorded as status=failed).

    `costs` is the method's cost model (asked of the method when not given); `prepared`, the sample's
    `_prepare_record` if already made."""
    record, ids, max_new = prepared or _prepare_record(lo, sample, settings, dims, costs or cost_model_of(lo.method))
    try:
        result = generate(lo.model, lo.method, ids.to(lo.device), max_new_tokens=max_new,
                          chunk_size=lo.preset.chunk_size,
                          repetition_penalty=settings.repetition_penalty)
    except torch.OutOfMemoryError as exc:
        return _failed(record, exc, lo)
    return _finish_record(record, result, lo, sample, 1)


def run_batch(lo: Loaded, samples: list[Sample], settings: RunSettings, dims: ModelDims, rows: int,
              pool: DecoderPool, costs: CostModel | None = None,
              prepared: list[Prepared] | None = None) -> list[SampleRecord]:
    """Several samples: each prefilled alone, decoded together through the static step (`generate_many`).
    Per-sample records equal `run_sample`'s but for times (decode time and peak memory are the batch's). If
    the batch runs out of memory, its samples run one at a time. `prepared`: the samples' `_prepare_record`s
    if already made."""
    costs = costs or cost_model_of(lo.method)
    prepared = prepared or [_prepare_record(lo, s, settings, dims, costs) for s in samples]
    try:
        results = generate_many(lo.model, lo.method, [ids.to(lo.device) for _, ids, _ in prepared],
                                [m for _, _, m in prepared],
                                chunk_size=lo.preset.chunk_size, repetition_penalty=settings.repetition_penalty,
                                pool=pool, batch=rows)
    except torch.OutOfMemoryError:
        if lo.device.type == "cuda":
            torch.cuda.empty_cache()
        return [run_sample(lo, s, settings, dims, costs, p) for s, p in zip(samples, prepared, strict=True)]
    return [_finish_record(rec, res, lo, s, len(samples)) for (rec, _, _), res, s in zip(prepared, results, samples)]


def decode_plan(lo: Loaded, settings: RunSettings, samples: list[Sample]) -> int:
    """Rows of the static decoder for this preset, or 0 for the eager engine (one sample at a time).

    `auto` takes the static step on a GPU when the method has a static layout; on the CPU the eager engine
    stays the (readable) reference path. The batch defaults to what half the free GPU memory holds."""
    supported = static_decode_supported(lo.method)
    if settings.decode == "eager" or (settings.decode == "auto" and (lo.device.type != "cuda" or not supported)):
        return 0
    if not supported:
        raise ValueError(f"--decode static: method {lo.method.name!r} has no static decode layout "
                         "(its kept tokens are not sinks + one window); use --decode eager or auto")
    if settings.batch_size is not None:
        return settings.batch_size
    if lo.device.type != "cuda":
        return 1
    cfg = lo.model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * lo.dtype.itemsize
    tokens = lo.method.decode_layout(max(DEFAULT_MAX_TOKENS_GUESS, _longest(samples))).capacity
    free, _ = torch.cuda.mem_get_info(lo.device)
    return max(1, min(MAX_AUTO_BATCH, len(samples), int(0.5 * free / max(1, 2 * per_token * tokens))))


DEFAULT_MAX_TOKENS_GUESS = 4096


def _longest(samples: list[Sample]) -> int:
    """A cheap upper bound of the prompt tokens: the longest prompt in characters (>= tokens) plus 1,024."""
    return max((len(s.prompt) for s in samples), default=0) + 1024


def manifest_for(preset: Preset, lo: Loaded | None, settings: RunSettings,
                 samples: list[Sample] | None = None) -> dict[str, Any]:
    protocol, tasks = preset_tasks(preset, settings)
    config = {
        "preset": preset.to_dict(),
        "method": lo.method.describe() if lo is not None else preset.method,
        "tasks": tasks, "limit": settings.limit, "seed": settings.seed,
        "chat_template": settings.chat_template, "max_new_tokens": settings.max_new_tokens,
        "repetition_penalty": settings.repetition_penalty, "prompt_set": settings.prompt_set,
        "dtype": str(lo.dtype) if lo is not None else settings.dtype,
    }
    if protocol == "paper" or settings.tasks != tasks:
        config["protocol"] = protocol
    if settings.max_length is not None:
        config["max_length"] = settings.max_length
    manifest = make_manifest(config, label=preset.name, datasets={"spec": tasks}, argv=sys.argv)
    manifest["protocol"] = {"name": protocol, "requested_tasks": settings.tasks, "tasks": tasks,
                            "truncation": _truncations(samples or [], settings.max_length)}
    if lo is not None:  # not hashed into the config: checked file by file on resume (harness.store)
        manifest["weights"] = lo.weight_fingerprints()
    return manifest


def _truncations(samples: list[Sample], max_length: int | None) -> dict[str, dict[str, Any]]:
    """Per task of the run, the truncation its prompts got (the protocol's budget, or `--max-length`)."""
    out: dict[str, dict[str, Any]] = {}
    for s in samples:
        if s.task not in out:
            task = task_settings(s)
            out[s.task] = {**with_max_length(task.truncation, max_length).to_dict(), "chat_template": task.chat_template}
    return out


def _load_samples_once(tasks: str, settings: RunSettings, tokenizer: Any,
                       cache: dict[tuple, list[Sample]] | None) -> list[Sample]:
    """The samples of `tasks`, made once per job for presets that share a tokenizer: generated tasks count
    their lengths in the model's tokens, and building 128k-token prompts takes seconds each."""
    key = (tasks, settings.data_dir, settings.limit, settings.seed, settings.prompt_set,
           getattr(tokenizer, "name_or_path", None), len(tokenizer) if hasattr(tokenizer, "__len__") else None)
    if cache is not None and key in cache:
        return cache[key]
    samples = load_samples(tasks, data_dir=settings.data_dir, limit=settings.limit, tokenizer=tokenizer,
                           seed=settings.seed, prompt_set=settings.prompt_set)
    if cache is not None:
        cache[key] = samples
    return samples


def run_preset(preset: Preset, settings: RunSettings, out_dir: Path,
               sample_cache: dict[tuple, list[Sample]] | None = None) -> Path:
    """Evaluate one preset into `out_dir`; resumes when the folder holds the same config. `sample_cache` lets
    the presets of one job share the samples they would each make alike."""
    rank, world = _dist()
    protocol, tasks = preset_tasks(preset, settings)
    if tasks != settings.tasks:
        log.info("%s runs %s: --tasks %s is %s (--protocol official for the benchmarks' own)", preset.name,
                 protocols.budget_note(protocol), settings.tasks, tasks)
    with loaded(preset, settings.device, settings.dtype) as lo:
        method = lo.method
        samples = _load_samples_once(tasks, settings, lo.tokenizer, sample_cache)
        mine = samples[rank::world]
        store = RunStore.create_or_resume(out_dir, manifest_for(preset, lo, settings, samples), rank=rank,
                                          world=world)
        done = store.done_keys(retry_failed=settings.retry_failed)
        todo = [s for s in mine if s.key not in done]
        dims = _dims(lo.model)
        costs = cost_model_of(lo.method)  # an unregistered method fails here, before any sample
        rows = decode_plan(lo, settings, todo)
        log.info("%s: %d sample(s) to run, %d already in %s (%r)", preset.name, len(todo), len(mine) - len(todo),
                 out_dir, method)  # the method with the settings it runs with: the preset's, else its own
        bar = tqdm(total=len(todo), desc=preset.name, unit="sample", dynamic_ncols=True,
                   disable=True if rank != 0 else tqdm_disable(settings.progress))
        pool = DecoderPool()
        groups = [todo[begin:begin + max(1, rows)] for begin in range(0, len(todo), max(1, rows))]
        with store:
            t0 = time.perf_counter()  # a group's wall time runs from the end of the one before it
            for group, prepared in _prepared_groups(
                    groups, lambda g: [_prepare_record(lo, s, settings, dims, costs) for s in g]):
                records = run_batch(lo, group, settings, dims, rows, pool, costs, prepared) if rows else \
                    [run_sample(lo, group[0], settings, dims, costs, prepared[0])]
                wall = (time.perf_counter() - t0) / len(records)
                for record in records:
                    record.wall_s = wall
                    store.append(record.to_dict())
                    bar.update(1)
                    if record.status == "ok":
                        bar.set_postfix(score=f"{record.score:.2f}", tok=record.prompt_tokens)
                t0 = time.perf_counter()
        bar.close()
    _barrier(world)
    if rank == 0:
        if world > 1:
            merge_shards(out_dir)
        write_summary(out_dir)
        _warn_if_window_holds_everything(preset, method, out_dir)
    return out_dir


def _prepared_groups(groups: list[list[Sample]], prepare_group: Callable[[list[Sample]], list[Prepared]]
                     ) -> Iterator[tuple[list[Sample], list[Prepared]]]:
    """Each group with its prepared prompts, in order. The next group's are prepared on a worker thread while
    the caller runs the current one: tokenising a 128k-token prompt is ~0.2 s of host time (`bench/bench_throughput.py
    --profile-host`, `leaderboards/perf/host-profile-h100/`) that the device would otherwise wait for. A preparation's error is raised here, when
    its group's turn comes."""
    if not groups:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-prepare") as worker:
        ahead = worker.submit(prepare_group, groups[0])
        for i, group in enumerate(groups):
            prepared = ahead.result()
            if i + 1 < len(groups):
                ahead = worker.submit(prepare_group, groups[i + 1])
            yield group, prepared


def _warn_if_window_holds_everything(preset: Preset, method: MemoryMethod, out_dir: Path) -> None:
    """Say once when the method's sinks + window held every prompt: it then ran exactly as full attention."""
    if method.window is None:  # unbounded: it is full attention
        return
    from harness.store import load_run

    lengths = [r.get("prompt_tokens") for r in load_run(out_dir).records]
    lengths = [n for n in lengths if isinstance(n, int)]
    budget = method.sinks + method.window
    if lengths and max(lengths) <= budget:
        log.warning("%s: sinks + window = %d tokens hold every prompt of this run (the longest has %d), so %s "
                    "ran exactly as full attention; use longer tasks or a smaller --window to test the memory",
                    preset.name, budget, max(lengths), preset.method)


def run_presets(presets: list[Preset], settings: RunSettings) -> list[Path]:
    """Several presets into `settings.output/<preset>/`; a combined summary and plots at the root."""
    out_dirs, sample_cache = [], {}
    for preset in presets:
        out_dir = settings.output if len(presets) == 1 else settings.output / preset.name
        out_dirs.append(run_preset(preset, settings, out_dir, sample_cache))
    rank, _ = _dist()
    if rank == 0 and len(presets) > 1:
        from harness.report import write_report

        write_report(out_dirs, settings.output)
    return out_dirs
