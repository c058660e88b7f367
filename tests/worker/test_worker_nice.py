"""SEQSERVE_WORKER_NICE: a worker that runs corpus batches can lower its own CPU priority, and
its prefork children run at it too (a real worker process; niceness read back from /proc)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests import processes


def _nice(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of stat(5): nice; fields[0] here is field 3


@pytest.mark.e2e
def test_a_worker_and_its_children_take_the_niceness_it_is_given(
    db: str, stack_env: dict[str, str], tmp_path: Path
) -> None:
    env = stack_env | {"SEQSERVE_WORKER_NICE": "7", "SEQSERVE_WORKER_METRICS_PORT": "0",
                       "SEQSERVE_VAR_DIR": str(tmp_path / "var")}
    own = os.nice(0)
    proc = processes.start(["worker", "--concurrency", "1"], env, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 90
        while not processes.children(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
        (child,) = processes.children(proc.pid)
        assert _nice(proc.pid) == _nice(child) == min(19, own + 7)
    finally:
        processes.stop(proc)


def test_the_setting_is_bounded() -> None:
    from pydantic import ValidationError

    from seqserve.shared.config import Settings

    assert Settings().worker_nice == 0
    for bad in (-1, 20):
        with pytest.raises(ValidationError):
            Settings(worker_nice=bad)
