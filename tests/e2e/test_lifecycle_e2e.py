"""Deadlines and retention through real processes: beat's sweep expires a job no worker took in
time and purges a finished job past its team's retention; the worker's metrics count both."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests import processes

pytestmark = pytest.mark.e2e


def _until(predicate, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise TimeoutError("condition not met in time")


def test_beat_expires_and_purges_on_a_real_stack(db: str, registered_model: str, stack_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    metrics_port = processes.free_port()
    env = stack_env | {
        "SEQSERVE_VAR_DIR": str(tmp_path / "var"), "SEQSERVE_WORKER_METRICS_PORT": str(metrics_port),
        "SEQSERVE_JOB_SWEEP_INTERVAL_SECONDS": "0.5",
        # The stack key's team keeps finished jobs 2 s; nobody consumes the low queue here.
        "SEQSERVE_RETENTION_TEAM_DAYS": json.dumps({"admin": 2 / 86400}),
        "SEQSERVE_WORKER_QUEUES": "inference.high,inference.normal,maintenance,webhooks",
    }
    with processes.running(env, tmp_path, ["worker", "--concurrency", "1"], ["beat"]) as base:
        body = {"kind": "classify", "model": registered_model, "inputs": ["a fine film", "dull"]}
        stuck = processes.post(f"{base}/v1/jobs", json=body | {"priority": "low", "max_queue_seconds": 1}).json()
        served = processes.wait_job(base, processes.post(f"{base}/v1/jobs", json=body).json()["id"])
        assert served["status"] == "succeeded" and served["result"] is not None

        def job(job_id: str) -> dict:
            return processes.get(f"{base}/v1/jobs/{job_id}").json()

        expired = _until(lambda: (j := job(stuck["id"]))["status"] == "expired" and j)
        assert expired["started_at"] is None and expired["result"] is None
        purged = _until(lambda: (j := job(served["id"]))["purged_at"] and j)
        assert purged["result"] is None and purged["num_inputs"] == 2 and purged["status"] == "succeeded"
        samples = processes.scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    assert processes.metric_total(samples, "seqserve_jobs_expired_total", kind="classify") == 1
    assert processes.metric_total(samples, "seqserve_jobs_purged_total") >= 1
