"""A corpus batch's low-priority wake-up yields to interactive work, in one process on the real
Postgres and Redis with the tiny model: the test plays a worker that takes wake-ups off the
broker's queues in priority order, as `queue_order_strategy: priority` does."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from seqserve.services.api.main import create_app
from seqserve.services.worker.runner import RunReport, run_wakeup
from seqserve.shared.config import reset_settings
from seqserve.shared.db.models import Job
from seqserve.shared.db.session import session_scope
from seqserve.shared.queueing import PRIORITY_QUEUES, Wakeup
from tests.api.batch_helpers import create, jsonl, step, upload
from tests.conftest import REDIS_URL, built_context, create_key, register_outcome


@pytest.fixture()
def client(db: str, registered_model: str, tiny_classifier: Any, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[TestClient]:
    # Five chunks of 4, all queued at once; one chunk per forward pass.
    monkeypatch.setenv("SEQSERVE_BATCH_CHUNK_INPUTS", '{"classify": 4}')
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 4}')
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_CHUNKS_IN_FLIGHT", "10")
    monkeypatch.setenv("SEQSERVE_WAKEUP_DRAIN_SECONDS", "600")  # only the yield hands a group on
    reset_settings()
    register_outcome("tiny-sst2-other", "classify", tiny_classifier)  # another version: another group
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _wakeup_of(message: bytes) -> Wakeup:
    """A wake-up as the broker holds it (kombu's envelope around Celery's [args, kwargs, embed])."""
    body = json.loads(base64.b64decode(json.loads(message)["body"]))
    return Wakeup.model_validate(body[1])


def _work_off(broker: redis.Redis) -> list[RunReport]:
    """Run the queued wake-ups as a worker does: high, then normal, then low, until none is left."""
    reports = []
    while True:
        message = next((m for q in ("high", "normal", "low") if (m := broker.rpop(PRIORITY_QUEUES[q])) is not None),
                       None)
        if message is None:
            return reports
        reports.append(run_wakeup(_wakeup_of(message), built_context()))


def _finished_at(batch_id: str) -> list[Any]:
    with session_scope() as session:
        return list(session.scalars(select(Job.finished_at).where(Job.batch_id == uuid.UUID(batch_id))))


@pytest.mark.parametrize("yields", [True, False])
def test_an_interactive_job_queued_while_a_batch_runs_ends_before_the_batch(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, yields: bool
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_YIELD_TO_INTERACTIVE", str(yields).lower())
    reset_settings()
    broker = redis.Redis.from_url(REDIS_URL)
    rows = [{"custom_id": f"r{i}", "input": f"a film numbered {i}"} for i in range(20)]
    batch = create(client, upload(client, "y.jsonl", jsonl(rows))["id"], "tiny-sst2")
    assert step(batch["id"]) == "in_progress"
    (low,) = [_wakeup_of(m) for m in broker.lrange(PRIORITY_QUEUES["low"], 0, -1)]
    broker.delete(PRIORITY_QUEUES["low"])
    interactive = client.post("/v1/jobs", json={"kind": "classify", "model": "tiny-sst2-other", "inputs": ["fine"]})
    assert interactive.status_code == 202 and interactive.json()["priority"] == "normal"
    # The batch's wake-up was already running when the interactive job came in.
    first = run_wakeup(low, built_context())
    _work_off(broker)
    chunks = _finished_at(batch["id"])
    assert len(chunks) == 5 and all(chunks)
    job = client.get(f"/v1/jobs/{interactive.json()['id']}").json()
    assert job["status"] == "succeeded"
    with session_scope() as session:
        ended = session.scalars(select(Job.finished_at).where(Job.id == uuid.UUID(job["id"]))).one()
    if yields:
        assert (first.batches, first.handed_on) == (1, True)  # one pass, then the rest handed on
        assert min(chunks) < ended < max(chunks)  # done while the batch still ran
    else:
        assert (first.batches, first.handed_on) == (5, False)  # the whole group drained first
        assert ended > max(chunks)


def test_a_batch_yields_neither_to_low_work_nor_to_its_own_group(client: TestClient) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    rows = [{"custom_id": f"r{i}", "input": f"a film numbered {i}"} for i in range(12)]
    batch = create(client, upload(client, "o.jsonl", jsonl(rows))["id"], "tiny-sst2")
    step(batch["id"])
    (low,) = [_wakeup_of(m) for m in broker.lrange(PRIORITY_QUEUES["low"], 0, -1)]
    for model, priority in (("tiny-sst2-other", "low"), ("tiny-sst2", "normal")):
        response = client.post("/v1/jobs", json={"kind": "classify", "model": model, "inputs": ["x"],
                                                 "priority": priority})
        assert response.status_code == 202, response.text
    report = run_wakeup(low, built_context())
    # Its own group's job runs first in the group's priority order; then the three chunks.
    assert (report.batches, report.jobs, report.handed_on) == (4, 4, False)
