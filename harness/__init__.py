"""ahn-harness: score, FLOPs and cache bytes of long-context memory methods per length bucket.

Importing ``harness`` checks that ``tasks``, ``baselines`` and ``ahn`` are the project's own packages (see
:mod:`harness.compat`). ``harness.load_run(path)`` reads a run folder into a pandas DataFrame
(:mod:`harness.frame`); ``harness.store.load_run`` is the record-level reader it builds on.
"""

from __future__ import annotations

from typing import Any

from harness.compat import check_own_packages

check_own_packages()


def __getattr__(name: str) -> Any:
    # pandas is imported only when the DataFrame API is used
    if name in ("load_run", "to_lm_eval_results"):
        from harness import frame

        return getattr(frame, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = ["load_run", "to_lm_eval_results"]
