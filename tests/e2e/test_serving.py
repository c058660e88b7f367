"""The job life cycle through real processes: batching, Prefer: wait, cancellation, webhooks,
a worker killed mid-job, and the reconciler, on Postgres and Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import Popen

import pytest

from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Job
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.webhooks import verify
from tests import processes

pytestmark = pytest.mark.e2e

SECRET = "test-webhook-secret"


@pytest.fixture(scope="module")
def serving_env(stack_env: dict[str, str]) -> dict[str, str]:
    return stack_env | {
        "SEQSERVE_WEBHOOK_SECRET": SECRET,
        "SEQSERVE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",  # the test's receiver listens on loopback
        "SEQSERVE_WEBHOOK_BACKOFF_SECONDS": "0.3",
        "SEQSERVE_JOB_LEASE_SECONDS": "4",
        "SEQSERVE_CANARY_INTERVAL_SECONDS": "0.5",
        "SEQSERVE_READINESS_WINDOW_SECONDS": "3",
    }


@pytest.fixture(scope="module")
def api(serving_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with processes.running(serving_env, tmp_path_factory.mktemp("serving-logs")) as base:
        yield base


StartWorker = Callable[..., tuple[Popen[bytes], str]]


@pytest.fixture()
def start_worker(serving_env: dict[str, str], tmp_path: Path) -> Iterator[StartWorker]:
    """Start workers on demand (env overrides per call); yields (process, metrics URL)."""
    started: list[Popen[bytes]] = []

    def start(**overrides: str) -> tuple[Popen[bytes], str]:
        port = processes.free_port()
        env = serving_env | {"SEQSERVE_WORKER_METRICS_PORT": str(port)} | overrides
        proc = processes.start(["worker", "--concurrency", "1"], env, tmp_path / f"worker{len(started)}.log")
        started.append(proc)
        processes.wait_http(f"http://127.0.0.1:{port}/metrics", proc, tmp_path / f"worker{len(started) - 1}.log")
        return proc, f"http://127.0.0.1:{port}/metrics"

    yield start
    for proc in started:
        processes.stop(proc)


def _submit(api: str, model: str, texts: list[str], **extra: object) -> dict:
    response = processes.post(f"{api}/v1/jobs", json={"kind": "classify", "model": model, "inputs": texts, **extra})
    assert response.status_code == 202, response.text
    return response.json()


def test_concurrent_jobs_run_in_fewer_forward_passes(api: str, registered_model: str, start_worker: StartWorker) -> None:
    ids = [_submit(api, registered_model, [f"movie number {i} was fine"])["id"] for i in range(24)]
    proc, metrics_url = start_worker()
    jobs = [processes.wait_job(api, job_id) for job_id in ids]
    assert {job["status"] for job in jobs} == {"succeeded"}
    assert len(processes.children(proc.pid)) == 1  # prefork: the one pool process ran them
    samples = processes.scrape(metrics_url)
    batches = processes.metric_total(samples, "seqserve_batch_jobs_count", kind="classify")
    batched_jobs = processes.metric_total(samples, "seqserve_batch_jobs_sum", kind="classify")
    assert batched_jobs == 24
    assert 1 <= batches < 24 / 2, f"{batches} forward passes for 24 jobs"
    assert processes.metric_total(samples, "seqserve_jobs_finished_total", status="succeeded") == 24


def test_the_solo_pool_runs_batches_in_the_consuming_process(
    api: str, registered_model: str, start_worker: StartWorker
) -> None:
    ids = [_submit(api, registered_model, [f"act {i} dragged"])["id"] for i in range(12)]
    proc, metrics_url = start_worker(SEQSERVE_WORKER_POOL="solo")
    jobs = [processes.wait_job(api, job_id) for job_id in ids]
    assert {job["status"] for job in jobs} == {"succeeded"}
    assert processes.children(proc.pid) == []  # no pool process: the consumer ran the forward passes
    samples = processes.scrape(metrics_url)
    assert processes.metric_total(samples, "seqserve_batch_jobs_sum", kind="classify") == 12
    assert processes.metric_total(samples, "seqserve_batch_jobs_count", kind="classify") < 12 / 2


def test_one_wakeup_drains_its_group_past_full_batches(
    api: str, registered_model: str, start_worker: StartWorker
) -> None:
    # Ten jobs of one group queued before any worker runs; a batch holds four, so the first
    # wake-up must claim again until the group is empty (the others then find nothing).
    ids = [_submit(api, registered_model, [f"scene {i} ran long"])["id"] for i in range(10)]
    _, metrics_url = start_worker(SEQSERVE_BATCH_MAX_INPUTS=json.dumps({"classify": 4}))
    jobs = [processes.wait_job(api, job_id, timeout=60) for job_id in ids]
    assert {job["status"] for job in jobs} == {"succeeded"}
    samples = processes.scrape(metrics_url)
    assert processes.metric_total(samples, "seqserve_batch_jobs_sum", kind="classify") == 10
    assert processes.metric_total(samples, "seqserve_batch_jobs_count", kind="classify") >= 3


def test_prefer_wait_answers_200_with_the_finished_job(api: str, registered_model: str, start_worker: StartWorker) -> None:
    start_worker()
    response = processes.post(
        f"{api}/v1/jobs", headers={"Prefer": "wait=30"}, timeout=40,
        json={"kind": "classify", "model": registered_model, "inputs": ["a fine , moving film"]},
    )
    assert response.status_code == 200, response.text
    waited = response.json()
    assert waited["status"] == "succeeded" and len(waited["result"]) == 1
    # The answer came from the job-finished event; it must be exactly what was committed.
    stored = processes.get(f"{api}/v1/jobs/{waited['id']}").json()
    assert stored == waited


def test_a_cancelled_queued_job_never_runs(api: str, registered_model: str, start_worker: StartWorker) -> None:
    cancelled = _submit(api, registered_model, ["never run me"])["id"]
    assert processes.post(f"{api}/v1/jobs/{cancelled}/cancel").json()["status"] == "cancelled"
    start_worker()
    later = _submit(api, registered_model, ["run me"])["id"]
    assert processes.wait_job(api, later)["status"] == "succeeded"
    job = processes.get(f"{api}/v1/jobs/{cancelled}").json()
    assert job["status"] == "cancelled" and job["attempts"] == 0 and job["result"] is None


class _Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).answers.pop(0) if type(self).answers else 200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_webhook_is_signed_and_retried_after_a_500(api: str, registered_model: str, start_worker: StartWorker) -> None:
    _Receiver.answers, _Receiver.received = [500], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        start_worker()
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job_id = _submit(api, registered_model, ["a witty film"], webhook_url=hook)["id"]
        deadline = time.monotonic() + 30
        while len(_Receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.shutdown()
    assert len(_Receiver.received) == 2
    for headers, body in _Receiver.received:
        assert verify(SECRET, int(headers["X-Seqserve-Timestamp"]), body, headers["X-Seqserve-Signature"])
        assert headers["X-Seqserve-Event"] == "job.finished"
        payload = json.loads(body)
        assert payload["id"] == job_id and payload["status"] == "succeeded" and payload["result"]
    assert not verify("wrong-secret", int(headers["X-Seqserve-Timestamp"]), body, headers["X-Seqserve-Signature"])
    time.sleep(0.5)
    with session_scope() as session:
        attempts = [(d.attempt, d.status_code) for d in jobs_repo.deliveries(session, uuid.UUID(job_id))]
    assert attempts == [(1, 500), (2, 200)]
    assert processes.get(f"{api}/v1/jobs/{job_id}").json()["webhook_status"] == "delivered"


def test_worker_killed_mid_job_and_the_job_completes_once(
    api: str, registered_model: str, start_worker: StartWorker
) -> None:
    # A long batching window holds the job `running` in the child long enough to kill it.
    worker, _ = start_worker(SEQSERVE_BATCH_MAX_DELAY_MS="2500")
    job_id = _submit(api, registered_model, ["killed once , served once"])["id"]
    deadline = time.monotonic() + 30
    while processes.get(f"{api}/v1/jobs/{job_id}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    (child,) = processes.children(worker.pid)
    os.kill(child, signal.SIGKILL)
    job = processes.wait_job(api, job_id, timeout=60)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2  # the killed attempt, then the one that finished
    assert len(job["result"]) == 1


def test_reconciler_republishes_a_job_whose_message_was_lost(
    api: str, registered_model: str, start_worker: StartWorker, serving_env: dict[str, str]
) -> None:
    from seqserve.services.worker.maintenance import reconcile
    from seqserve.shared.config import get_settings
    from seqserve.shared.queueing import make_celery

    start_worker()
    reference = _submit(api, registered_model, ["a reference job"])
    processes.wait_job(api, reference["id"])
    with session_scope() as session:  # accepted and committed, but its message never sent
        original = session.get(Job, uuid.UUID(reference["id"]))
        lost = Job(kind="classify", model_name=original.model_name, model_ref=original.model_ref,
                   model_version_id=original.model_version_id, inputs=["lost and found"], params={},
                   priority="normal", status="queued", created_at=utcnow(), enqueued_at=None, team=original.team)
        session.add(lost)
        session.flush()
        lost_id = str(lost.id)
    assert reconcile(make_celery(get_settings()), get_settings()) == 1
    job = processes.wait_job(api, lost_id)
    assert job["status"] == "succeeded" and job["attempts"] == 1


def test_the_benchmark_load_generator_measures_each_run_when_told(
    api: str, registered_model: str, start_worker: StartWorker, data_dir: Path
) -> None:
    start_worker()
    command = [sys.executable, "-m", "bench.load", "--base", api, "--kind", "classify", "--model", registered_model,
               "--data-dir", str(data_dir), "--seconds", "1", "open", "--rate", "20", "--warmup", "0.5", "--runs", "2"]
    load = subprocess.Popen(command, cwd=processes.REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "SEQSERVE_API_KEY": processes.STACK_KEY})
    assert load.stdin is not None and load.stdout is not None
    runs = []
    for _ in range(2):
        assert load.stdout.readline().strip() == "ready"  # the caller reads CPU counters here
        load.stdin.write("go\n")
        load.stdin.flush()
        runs.append(json.loads(load.stdout.readline()))
    load.stdin.close()
    assert load.wait(timeout=30) == 0
    for run in runs:
        assert run["mode"] == "open-loop@20/s" and run["failed"] == 0 and run["jobs"] == 20
        assert 0 < run["p50_ms"] <= run["p99_ms"] < 5000


def test_the_worker_logs_each_task_only_at_info(
    api: str, registered_model: str, start_worker: StartWorker, tmp_path: Path
) -> None:
    for number, level in enumerate(("INFO", "WARNING")):
        worker, _ = start_worker(SEQSERVE_LOG_LEVEL=level)
        job = processes.wait_job(api, _submit(api, registered_model, [f"a film at {level}"])["id"])
        assert job["status"] == "succeeded"
        processes.stop(worker)
        log = (tmp_path / f"worker{number}.log").read_text()
        assert ("seqserve.jobs.run" in log) == (level == "INFO"), log[-2000:]
