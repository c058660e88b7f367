"""The auto thread rule: cores from the affinity mask and the cgroup quota, divided between
the processes that share them; read back from started worker and trainer processes."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from seqserve.shared.threads import affinity_cores, cgroup_quota, choose_threads
from tests import processes

CORES = affinity_cores()


def _cgroup_v2(folder: Path, cpu_max: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.max").write_text(cpu_max + "\n")
    return folder


def test_quota_from_cgroup_v2_and_v1(tmp_path: Path) -> None:
    assert cgroup_quota(_cgroup_v2(tmp_path / "a", "150000 100000")) == 1.5
    assert cgroup_quota(_cgroup_v2(tmp_path / "b", "max 100000")) is None
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path / "v1") == 0.5
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "unlimited"
    assert cgroup_quota(tmp_path / "v1") is None
    assert cgroup_quota(tmp_path / "nothing-here") is None


def test_threads_divide_the_usable_cores_and_a_setting_wins(tmp_path: Path) -> None:
    unlimited = _cgroup_v2(tmp_path / "u", "max 100000")
    assert choose_threads("worker", 0, 1, unlimited).threads == CORES
    assert choose_threads("worker", 0, 2, unlimited).threads == max(1, CORES // 2)
    assert choose_threads("worker", 0, CORES * 4, unlimited).threads == 1  # never 0
    assert choose_threads("worker", 3, 8, unlimited).threads == 3 and choose_threads("w", 3, 8, unlimited).explicit
    quota = _cgroup_v2(tmp_path / "q", "100000 100000")
    choice = choose_threads("trainer", 0, 1, quota)
    assert (choice.threads, choice.quota, choice.cores_seen) == (1, 1.0, CORES)  # the quota caps the mask
    half = _cgroup_v2(tmp_path / "s", "50000 100000")
    assert choose_threads("t", 0, 1, half).threads == 1  # half a core still gets one
    line = choice.describe()
    assert f"{CORES} cores seen" in line and "cpu quota 1 cores" in line and "-> 1 torch threads (auto)" in line


def test_busy_cores_count_against_the_usable_ones(tmp_path: Path) -> None:
    unlimited = _cgroup_v2(tmp_path, "max 100000")
    assert choose_threads("trainer", 0, 1, unlimited, load=0.9).threads == CORES  # a fraction is no core
    assert choose_threads("trainer", 0, 1, unlimited, load=1.2).threads == max(1, CORES - 1)
    assert choose_threads("trainer", 0, 1, unlimited, load=13.0).threads == 1  # never 0
    assert choose_threads("trainer", 2, 1, unlimited, load=13.0).threads == 2  # the setting still wins
    assert "load 13.0" in choose_threads("trainer", 0, 1, unlimited, load=13.0).describe()


def _threads_logged(log: Path, role: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> list[int]:
    """The torch.get_num_threads() values the processes of `role` logged at start."""
    pattern = re.compile(rf"{role} threads: .* torch.get_num_threads\(\)=(\d+)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [int(m.group(1)) for m in pattern.finditer(log.read_text())]
        if found:
            return found
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(f"no '{role} threads' line:\n{log.read_text()[-3000:]}")


@pytest.mark.e2e
def test_worker_children_share_the_cores(db: str, stack_env: dict[str, str], tmp_path: Path) -> None:
    env = stack_env | {"SEQSERVE_TORCH_THREADS": "0", "SEQSERVE_CGROUP_DIR": str(_cgroup_v2(tmp_path, "max 100000")),
                       "SEQSERVE_LOAD_AWARE_THREADS": "false",  # counts that do not depend on the neighbours
                       "SEQSERVE_WORKER_METRICS_PORT": "0", "SEQSERVE_VAR_DIR": str(tmp_path / "var")}
    log = tmp_path / "worker.log"
    proc = processes.start(["worker", "--concurrency", "2"], env, log)
    try:
        deadline = time.monotonic() + 90
        while len(_threads_logged(log, "worker", proc)) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        threads = _threads_logged(log, "worker", proc)
    finally:
        processes.stop(proc)
    assert threads == [max(1, CORES // 2)] * 2
    assert "2 processes sharing" in log.read_text()


def _started_trainer(env: dict[str, str], tmp_path: Path) -> tuple[list[int], str]:
    """Start `seqserve trainer`, read back the threads its pool child chose, stop it."""
    env = env | {"SEQSERVE_TRAINER_METRICS_PORT": "0", "SEQSERVE_VAR_DIR": str(tmp_path / "var"),
                 "SEQSERVE_LOAD_AWARE_THREADS": "false"}
    log = tmp_path / "trainer.log"
    proc = processes.start(["trainer"], env, log)
    try:
        return _threads_logged(log, "trainer", proc), log.read_text()
    finally:
        processes.stop(proc)


@pytest.mark.e2e
def test_trainer_under_a_quota_takes_what_the_quota_allows(
    db: str, stack_env: dict[str, str], tmp_path: Path
) -> None:
    quota = _cgroup_v2(tmp_path / "cgroup", "100000 100000")
    threads, log = _started_trainer(stack_env | {"SEQSERVE_TORCH_THREADS": "0", "SEQSERVE_CGROUP_DIR": str(quota)},
                                    tmp_path)
    assert threads == [1]
    assert "cpu quota 1 cores" in log


@pytest.mark.e2e
def test_an_explicit_thread_count_wins_in_a_started_process(
    db: str, stack_env: dict[str, str], tmp_path: Path
) -> None:
    threads, log = _started_trainer(stack_env | {"SEQSERVE_TORCH_THREADS": "3"}, tmp_path)
    assert threads == [3]
    assert "(SEQSERVE_TORCH_THREADS)" in log
    assert os.environ.get("SEQSERVE_TORCH_PROCESSES") is None  # the test process itself is untouched
