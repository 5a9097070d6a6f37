"""What a command writes to the terminal: log messages through :mod:`logging`, progress bars by tqdm's rule.

* Messages of the project's packages (``harness``, ``ahn``, ``baselines``, ``tasks``) go to standard error
  through one handler: ``--quiet`` keeps errors only, the default shows information, ``--verbose`` debug
  messages too. Standard output carries the command's results only (for ``run``: the results paths).
* Progress bars follow tqdm's convention: shown on a terminal, off when standard error is not one (a log file,
  CI), unless asked for with ``--progress``; ``--no-progress`` and ``--quiet`` turn them off everywhere,
  transformers' own "Loading weights" bar included (it ignores whether it writes to a terminal).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

PACKAGES = ("harness", "ahn", "baselines", "tasks")
QUIET, NORMAL, VERBOSE = -1, 0, 1
_LEVELS = {QUIET: logging.ERROR, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}
_HANDLER_NAME = "ahn-harness-console"


def verbosity_of(quiet: bool, verbose: bool) -> int:
    """``QUIET``, ``NORMAL`` or ``VERBOSE`` from the two flags (both at once is an error)."""
    if quiet and verbose:
        raise ValueError("--quiet and --verbose contradict each other; pass one of them")
    return QUIET if quiet else VERBOSE if verbose else NORMAL


def progress_enabled(progress: bool | None, verbosity: int = NORMAL, stream: TextIO | None = None) -> bool:
    """Whether bars are drawn: asked for (True/False), else only on a terminal; never under ``--quiet``."""
    if verbosity == QUIET:
        return False
    if progress is not None:
        return progress
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` argument for a setting: True/False as asked, None (tqdm: off when not a TTY) when unset."""
    return None if progress is None else not progress


def configure(verbosity: int = NORMAL, progress: bool | None = None, stream: TextIO | None = None) -> bool:
    """Set up logging and the third-party progress bars for one command; returns whether bars are drawn."""
    if verbosity not in _LEVELS:
        raise ValueError(f"verbosity must be one of {sorted(_LEVELS)}, got {verbosity!r}")
    level = _LEVELS[verbosity]
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"
                                           if verbosity == VERBOSE else "%(message)s"))
    for name in PACKAGES:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)  # still propagates: a handler the caller put on the root logger sees it too
    bars = progress_enabled(progress, verbosity, stream)
    _third_party(verbosity, bars)
    return bars


def _third_party(verbosity: int, bars: bool) -> None:
    """transformers' and huggingface_hub's verbosity and bars (their bars draw even into a log file)."""
    if not bars:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when transformers / the Hub client load
    if verbosity == QUIET:
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    if "transformers" not in sys.modules and verbosity != VERBOSE:
        return  # the environment covers a later import
    from transformers.utils import logging as hf_logging

    if not bars:
        hf_logging.disable_progress_bar()
    if verbosity == QUIET:
        hf_logging.set_verbosity_error()
    elif verbosity == VERBOSE:
        hf_logging.set_verbosity_info()
