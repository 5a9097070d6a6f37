"""The training data a config names (`ahn.train.config.DataConfig.source`): one function over the sources of
`ahn.train.data` and `ahn.train.pysource`, so that neither of those imports the other's."""

from __future__ import annotations

from typing import Any

from ahn.train.data import DataError, HubChatSource, Source, SyntheticSource, read_jsonl
from ahn.train.pysource import PythonSourceCorpus, parse_roots


def build_source(cfg: Any, tokenizer: Any, seed: int = 0) -> Source:
    """The Source named by a :class:`ahn.train.config.DataConfig`."""
    if cfg.source == "synthetic":
        return SyntheticSource(tokenizer, cfg.seq_len, min_len=cfg.min_len, tasks=cfg.tasks,
                               weights=cfg.task_weights, seed=seed, append_eos=cfg.append_eos,
                               labels=cfg.labels)
    if cfg.source == "jsonl":
        return read_jsonl(cfg.path, tokenizer, fmt=cfg.format, filter_len=cfg.filter_len,
                          cutoff_len=cfg.cutoff_len, truncation=cfg.truncation, max_samples=cfg.max_samples)
    if cfg.source == "pysource":
        return PythonSourceCorpus(tokenizer, cfg.seq_len, cfg.max_samples, roots=parse_roots(cfg.path),
                                  min_tokens=cfg.filter_len, seed=seed)
    if cfg.source == "chatqa2":
        return HubChatSource(tokenizer, cfg.path, cfg.split, filter_len=cfg.filter_len, cutoff_len=cfg.cutoff_len,
                             truncation=cfg.truncation, max_samples=cfg.max_samples, num_proc=cfg.num_proc)
    raise DataError(f"unknown data source {cfg.source!r}; valid: chatqa2, jsonl, synthetic, pysource")
