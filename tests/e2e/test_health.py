"""Health that pulls the right thing out of service (real processes, Postgres, Redis): the
API stays ready while beat or the workers are gone, the queue report says who consumes, and
a worker that stops consuming fails its own /livez until it consumes again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen

import pytest

from tests import processes

pytestmark = pytest.mark.e2e

LIVENESS_SECONDS = 3


@pytest.fixture(scope="module")
def health_env(stack_env: dict[str, str]) -> dict[str, str]:
    return stack_env | {
        "SEQSERVE_CANARY_INTERVAL_SECONDS": "0.5",
        "SEQSERVE_READINESS_WINDOW_SECONDS": "3",
        "SEQSERVE_CONSUMER_WINDOW_SECONDS": "3",
        "SEQSERVE_WORKER_LIVENESS_SECONDS": str(LIVENESS_SECONDS),
    }


@pytest.fixture(scope="module")
def api(health_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with processes.running(health_env, tmp_path_factory.mktemp("health-logs")) as base:
        yield base


Start = Callable[..., tuple[Popen[bytes], str]]


@pytest.fixture()
def start(health_env: dict[str, str], tmp_path: Path) -> Iterator[Start]:
    """Start `seqserve` processes; yields (process, its metrics base URL); stopped afterwards."""
    started: list[Popen[bytes]] = []

    def start_one(*args: str) -> tuple[Popen[bytes], str]:
        port = processes.free_port()
        log = tmp_path / f"{args[0]}{len(started)}.log"
        proc = processes.start(list(args), health_env | {"SEQSERVE_WORKER_METRICS_PORT": str(port)}, log)
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        if args[0] == "worker":
            processes.wait_http(f"{base}/livez", proc, log)
        return proc, base

    yield start_one
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGCONT)  # a stopped child must be able to exit
        processes.stop(proc)


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never {what} in {timeout}s"
        time.sleep(0.2)


def _queues(api: str) -> dict:
    return processes.get(f"{api}/v1/queues", timeout=10).json()


def _submit(api: str, model: str, text: str) -> str:
    response = processes.post(f"{api}/v1/jobs", json={"kind": "classify", "model": model, "inputs": [text]})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_with_beat_stopped_the_api_stays_ready_and_keeps_accepting(
    api: str, registered_model: str, start: Start
) -> None:
    start("worker", "--concurrency", "1", "--hostname", "steady@%h")
    beat, _ = start("beat")
    _until(lambda: _queues(api)["queues"]["inference.high"]["canary"]["ok"], "a canary ran")
    processes.stop(beat)
    time.sleep(4)  # past the canary window: no queue has run a canary lately
    assert not _queues(api)["queues"]["inference.high"]["canary"]["ok"]
    ready = processes.get(f"{api}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    job = processes.wait_job(api, _submit(api, registered_model, "no beat , still served"))
    assert job["status"] == "succeeded"
    report = _queues(api)
    assert report["ok"] is True  # the worker vouches for itself, beat or not
    assert [c["worker"] for c in report["queues"]["inference.normal"]["consumers"]][0].startswith("steady@")


def test_the_queue_report_drops_a_stopped_worker_and_readiness_stays(api: str, start: Start) -> None:
    worker, _ = start("worker", "--concurrency", "1")
    _until(lambda: _queues(api)["ok"], "consumed")
    processes.stop(worker)
    _until(lambda: not _queues(api)["ok"], "unconsumed")
    assert _queues(api)["queues"]["inference.low"]["consumers"] == []
    assert processes.get(f"{api}/readyz", timeout=10).status_code == 200


def test_a_worker_that_stops_consuming_fails_its_liveness_until_it_consumes_again(
    api: str, registered_model: str, start: Start
) -> None:
    worker, base = start("worker", "--concurrency", "1")
    _until(lambda: processes.get(f"{base}/livez").json()["status"] == "live", "watching its queues")  # pool up
    (child,) = processes.children(worker.pid)
    os.kill(child, signal.SIGSTOP)  # alive, connected, consuming nothing
    ids = [_submit(api, registered_model, f"waiting film {i}") for i in range(3)]
    stopped = time.monotonic()
    _until(lambda: processes.get(f"{base}/livez").status_code == 503, "stuck", timeout=LIVENESS_SECONDS + 30)
    assert time.monotonic() - stopped >= LIVENESS_SECONDS  # not before the limit
    body = processes.get(f"{base}/livez").json()
    assert body["status"] == "stuck" and body["waiting"] > 0
    _until(lambda: not _queues(api)["ok"], "withdrawn from the consumer registry")
    os.kill(child, signal.SIGCONT)
    assert all(processes.wait_job(api, job_id)["status"] == "succeeded" for job_id in ids)
    _until(lambda: processes.get(f"{base}/livez").status_code == 200, "live again")
