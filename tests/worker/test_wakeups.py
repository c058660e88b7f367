"""Wake-ups end to end in one process, on the real Postgres and Redis: each job wakes its
batch group, one wake-up drains the group in batches, and a redelivered wake-up comes back
when a dead attempt's lease lapses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from seqserve.services.worker.batching import first_batch
from seqserve.services.worker.runner import run_wakeup
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.queueing import PRIORITY_QUEUES
from tests.conftest import REDIS_URL, built_context, create_key
from tests.worker.test_batching import wakeup_of


@pytest.fixture()
def client(db: str, registered_model: str) -> Iterator[TestClient]:
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _submit(client: TestClient, text: str, priority: str = "normal") -> uuid.UUID:
    body = {"kind": "classify", "model": "tiny-sst2", "inputs": [text], "priority": priority}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


def test_each_job_wakes_its_group_and_one_wakeup_runs_them_all(client: TestClient) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    ids = [_submit(client, f"film {i}") for i in range(6)]
    _submit(client, "urgent film", priority="high")
    assert broker.llen(PRIORITY_QUEUES["normal"]) == 6 and broker.llen(PRIORITY_QUEUES["high"]) == 1
    report = run_wakeup(wakeup_of(ids[0]), built_context())
    assert (report.batches, report.jobs) == (1, 7)  # the whole group in one forward pass, high first
    assert run_wakeup(wakeup_of(ids[1]), built_context()).status == "empty"  # the other wake-ups find nothing


def test_a_wakeup_drains_its_group_in_batches(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 2}')
    monkeypatch.setenv("SEQSERVE_WAKEUP_DRAIN_SECONDS", "600")  # however slow this machine is
    reset_settings()
    ids = [_submit(client, f"a fine film {i}") for i in range(5)]
    report = run_wakeup(wakeup_of(ids[0]), built_context())
    assert (report.batches, report.jobs, report.retry_in) == (3, 5, None)
    jobs = [client.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * 5
    assert all(len(job["result"]) == 1 and job["attempts"] == 1 for job in jobs)
    assert run_wakeup(wakeup_of(ids[0]), built_context()).status == "empty"  # a late wake-up finds nothing


def test_a_redelivered_wakeup_looks_again_when_the_dead_attempts_lease_lapses(client: TestClient) -> None:
    job = _submit(client, "claimed by a worker that then died")
    assert first_batch(wakeup_of(job), built_context()) is not None  # the dead attempt
    assert run_wakeup(wakeup_of(job), built_context()).retry_in is None  # a wake-up that was not redelivered
    report = run_wakeup(wakeup_of(job), built_context(), redelivered=True)
    lease = get_settings().job_lease_seconds
    assert report.jobs == 0 and report.retry_in is not None and lease - 30 < report.retry_in <= lease


def test_a_wakeup_hands_the_rest_of_its_group_on_when_its_drain_time_runs_out(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 2}')
    monkeypatch.setenv("SEQSERVE_WAKEUP_DRAIN_SECONDS", "0")
    reset_settings()
    broker = redis.Redis.from_url(REDIS_URL)
    ids = [_submit(client, f"a long film {i}") for i in range(5)]
    queue = PRIORITY_QUEUES["normal"]
    broker.delete(queue)  # the submissions' own wake-ups: only the handed-on one should appear
    report = run_wakeup(wakeup_of(ids[0]), built_context())
    assert (report.batches, report.jobs, report.handed_on) == (1, 2, True)
    assert broker.llen(queue) == 1  # the rest wait for their turn behind whatever else is queued
    statuses = [client.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in ids]
    assert statuses.count("succeeded") == 2 and statuses.count("queued") == 3
