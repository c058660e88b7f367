"""How many torch intra-op threads a process takes: the cores it may really use, divided
between the processes that share them.

torch's own default is one thread per core it sees, in every process: a worker with two
children on a 2-core machine beside a trainer spins six OpenMP threads on two cores, and on a
busy machine one quick classify epoch took 5-10x longer than with one thread (issue 19,
docs/benchmarks/threads.md). The rule here:

    usable  = min(CPUs in the affinity mask, the cgroup CPU quota rounded down)
    free    = usable - the 1-minute load average rounded down (others' running work), at least 1
    threads = max(1, free // processes)

The load term: on a busy 2-core machine two spinning threads per process were 10-20x slower
than one (docs/benchmarks/threads.md); it is read when a process starts and at every training
run. `SEQSERVE_LOAD_AWARE_THREADS=false` leaves it out.

`SEQSERVE_TORCH_THREADS=N` (N > 0) still wins. Written by hand rather than taken from
loky/joblib's cpu_count: their cgroup paths are fixed, and the tests pass a cgroup folder of
their own (`SEQSERVE_CGROUP_DIR`) to read the choice back from a started process.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("seqserve.threads")


@dataclass(frozen=True)
class ThreadChoice:
    """What a process saw and chose; `describe()` is the one INFO line it logs at start."""

    role: str
    cores_seen: int  # CPUs in this process's affinity mask
    quota: float | None  # cgroup CPU quota in cores; None when unlimited
    load: float  # 1-minute load average counted against the cores (0 when not load-aware)
    processes: int  # processes sharing the usable cores (this one included)
    threads: int
    explicit: bool  # SEQSERVE_TORCH_THREADS set it

    def describe(self) -> str:
        quota = "none" if self.quota is None else f"{self.quota:g} cores"
        rule = "SEQSERVE_TORCH_THREADS" if self.explicit else "auto"
        return (f"{self.role} threads: {self.cores_seen} cores seen, cpu quota {quota}, load {self.load:.1f}, "
                f"{self.processes} processes sharing -> {self.threads} torch threads ({rule})")


def affinity_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_cgroup_v2(root: Path) -> Path:
    """This process's cgroup v2 folder under `root` (the root itself inside a cgroup namespace)."""
    for line in (_read(Path("/proc/self/cgroup")) or "").splitlines():
        if line.startswith("0::"):
            candidate = root / line[3:].lstrip("/")
            if (candidate / "cpu.max").is_file():
                return candidate
    return root


def cgroup_quota(root: Path) -> float | None:
    """The CPU quota in cores from cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`; None if unlimited."""
    v2 = _read(_own_cgroup_v2(root) / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    for folder in ("cpu", "cpu,cpuacct"):
        quota_us, period_us = _read(root / folder / "cpu.cfs_quota_us"), _read(root / folder / "cpu.cfs_period_us")
        if quota_us is not None and period_us is not None and int(quota_us) > 0:
            return int(quota_us) / int(period_us)
    return None


def usable_cores(cgroup_dir: Path) -> tuple[int, float | None, int]:
    """(CPUs in the affinity mask, cgroup quota in cores or None, cores this machine lends us)."""
    seen, quota = affinity_cores(), cgroup_quota(cgroup_dir)
    usable = seen if quota is None else min(seen, max(1, math.floor(quota)))
    return seen, quota, max(1, usable)


def choose_threads(role: str, setting: int, processes: int, cgroup_dir: Path, load: float = 0.0) -> ThreadChoice:
    """The thread count for one of `processes` processes sharing this machine's cores, `load`
    of them already busy with other work."""
    processes = max(1, processes)
    seen, quota, usable = usable_cores(cgroup_dir)
    free = max(1, usable - math.floor(load))
    threads = setting if setting > 0 else max(1, free // processes)
    return ThreadChoice(role, seen, quota, load, processes, threads, setting > 0)


def apply_threads(role: str, processes: int = 1) -> ThreadChoice:
    """Choose by the settings (SEQSERVE_TORCH_THREADS, SEQSERVE_TORCH_PROCESSES when a
    supervisor such as `seqserve up` says how many share) and the load, set torch's count, log it."""
    import torch

    from seqserve.shared.config import get_settings

    settings = get_settings()
    load = os.getloadavg()[0] if settings.load_aware_threads else 0.0
    choice = choose_threads(role, settings.torch_threads, settings.torch_processes or processes,
                            settings.cgroup_dir, load)
    torch.set_num_threads(choice.threads)
    log.info("%s; torch.get_num_threads()=%d", choice.describe(), torch.get_num_threads())
    return choice
