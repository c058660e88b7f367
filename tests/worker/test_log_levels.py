"""Per-message lines (canaries included) are DEBUG: absent at INFO (tests/e2e/test_up_stack.py),
present when asked for."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import processes

pytestmark = pytest.mark.e2e


def test_canary_lines_show_at_debug(db: str, stack_env: dict[str, str], tmp_path: Path) -> None:
    env = stack_env | {"SEQSERVE_CANARY_INTERVAL_SECONDS": "0.5", "SEQSERVE_VAR_DIR": str(tmp_path / "var"),
                       "SEQSERVE_WORKER_METRICS_PORT": "0"}
    worker = processes.start(["worker", "--loglevel", "DEBUG"], env, tmp_path / "worker.log")
    beat = processes.start(["beat", "--loglevel", "DEBUG"], env, tmp_path / "beat.log")

    def canary_lines() -> tuple[list[str], list[str]]:
        received = [line for line in (tmp_path / "worker.log").read_text().splitlines()
                    if "seqserve.queues.canary" in line and "received" in line]
        sent = [line for line in (tmp_path / "beat.log").read_text().splitlines() if "Sending due task canary" in line]
        return received, sent

    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(canary_lines()):
            time.sleep(0.3)
    finally:
        processes.stop(beat)
        processes.stop(worker)
    received, sent = canary_lines()
    assert received and sent, (tmp_path / "worker.log").read_text()[-2000:]
