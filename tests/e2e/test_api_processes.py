"""Several API processes on one port (SEQSERVE_API_WORKERS): jobs flow through any of them,
and /metrics merges every process's request metrics."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests import processes

pytestmark = pytest.mark.e2e


def test_two_api_processes_share_the_port_and_the_metrics(
    stack_env: dict[str, str], registered_model: str, tmp_path: Path
) -> None:
    env = stack_env | {"SEQSERVE_API_WORKERS": "2"}
    with processes.running(env, tmp_path, ["worker", "--concurrency", "1"]) as base, \
            httpx.Client(base_url=base, timeout=30, headers=processes.STACK_AUTH) as http:
        for _ in range(30):  # new connections: the kernel spreads them over both processes
            assert processes.get(f"{base}/healthz").status_code == 200
        # One keep-alive connection: without TCP_NODELAY each answer (headers, then body)
        # stalls ~40 ms on Nagle's algorithm and the client's delayed ACK.
        took = []
        for _ in range(21):
            started = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            took.append(time.perf_counter() - started)
        assert sorted(took)[10] < 0.03, f"median {sorted(took)[10] * 1000:.0f} ms per request"
        job = http.post("/v1/jobs", headers={"Prefer": "wait=20"},
                        json={"kind": "classify", "model": registered_model, "inputs": ["a warm film"]})
        assert job.status_code == 200 and job.json()["status"] == "succeeded"
        samples = processes.scrape(f"{base}/metrics")
    pids = set(re.findall(r"Started server process \[(\d+)\]", (tmp_path / "api.log").read_text()))
    assert len(pids) == 2, pids
    served = processes.metric_total(samples, "seqserve_http_request_seconds_count", route="/healthz")
    assert served >= 30  # counted whichever process answered
    assert processes.metric_total(samples, "seqserve_jobs_queued") == 0
