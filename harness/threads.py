"""How many CPU threads torch uses: decided once per command, in this one place, and recorded in the manifest.

torch starts one thread per core of the machine. On a shared CPU (a CI runner, a login node, a laptop busy
with other work) those threads compete with the other processes' for the same cores, and an oversubscribed
matmul waits on the slowest of them: on two cores with one kept busy by a CPU burner, the embedded default
(`python -m harness run`, 224 samples) took 286 s with torch's two threads and 102 s with one, with identical
predictions. So the harness takes the cores this process may actually use (its CPU
affinity, `os.sched_getaffinity`, and a cgroup CPU quota when one is set), minus the ones the load average
says are busy at start, and at least one:

1. `--threads N` on the command line, else
2. `AHN_HARNESS_THREADS=N` in the environment, else
3. `OMP_NUM_THREADS` when the user set it (torch reads it; the harness leaves it alone), else
4. the free usable cores as above.

A GPU run is unaffected in substance (the host threads only feed the GPU).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

ENV = "AHN_HARNESS_THREADS"


@dataclass(frozen=True)
class ThreadPolicy:
    threads: int
    source: str  # "--threads", ENV, "OMP_NUM_THREADS" or "free cores"
    usable_cores: int
    load_average: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (`cpu.max`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, quota) if quota is not None else cores)


def _cgroup_quota() -> int | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    try:
        return max(1, math.ceil(int(text[0]) / int(text[1])))
    except (ValueError, ZeroDivisionError):
        return None


def _positive_int(value: str, name: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name}={value!r}: must be an integer >= 1 (CPU threads for torch)")
    return n


def decide(flag: int | None = None) -> ThreadPolicy:
    """The thread count by the order in the module's docstring (a bad value is a ValueError naming it)."""
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    if flag is not None:
        if not isinstance(flag, int) or flag < 1:
            raise ValueError(f"--threads {flag!r}: must be an integer >= 1 (CPU threads for torch)")
        return ThreadPolicy(flag, "--threads", cores, load)
    if os.environ.get(ENV, "").strip():
        return ThreadPolicy(_positive_int(os.environ[ENV].strip(), ENV), ENV, cores, load)
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return ThreadPolicy(_positive_int(os.environ["OMP_NUM_THREADS"].strip(), "OMP_NUM_THREADS"),
                            "OMP_NUM_THREADS", cores, load)
    busy = 0 if load is None else int(round(load))
    return ThreadPolicy(max(1, cores - busy), "free cores", cores, load)


_APPLIED: list[ThreadPolicy] = []  # the policy this process set, for the manifest (`current`)


def apply(flag: int | None = None) -> ThreadPolicy:
    """Decide and set torch's intra-op threads; returns the policy (also kept for `current`)."""
    policy = decide(flag)
    import torch

    if torch.get_num_threads() != policy.threads:
        torch.set_num_threads(policy.threads)
    _APPLIED[:] = [policy]
    return policy


def current() -> dict | None:
    """What the manifest records: the policy applied in this process (if any) and torch's thread count now."""
    import sys

    torch = sys.modules.get("torch")
    if not _APPLIED and torch is None:
        return None
    out = _APPLIED[0].as_dict() if _APPLIED else {"source": "torch default"}
    if torch is not None:
        out["torch_threads"] = torch.get_num_threads()
    return out


__all__ = ["ENV", "ThreadPolicy", "apply", "current", "decide", "usable_cores"]
