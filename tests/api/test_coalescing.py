"""Coalesced triggers and the worker's gather, on the real Postgres and Redis: jobs of one
batch group share one queued message, and the message still gathers its riders when its own
job already ran in another batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from seqserve.services.worker import batching
from seqserve.services.worker.batching import Batch, gather
from seqserve.shared.config import get_settings
from seqserve.shared.db.models import JobStatus
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.queueing import PRIORITY_QUEUES, TriggerGate, trigger_gate
from tests.conftest import REDIS_URL


@pytest.fixture()
def client(db: str) -> Iterator[TestClient]:
    batching._versions.clear()  # version ids restart with every test database
    with TestClient(create_app()) as test_client:
        yield test_client


def _submit(client: TestClient, model: str, text: str, priority: str = "normal", **params: object) -> str:
    body = {"kind": "classify", "model": model, "inputs": [text], "priority": priority, "params": params}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _trigger_keys() -> list[str]:
    return sorted(key.decode() for key in redis.Redis.from_url(REDIS_URL).keys(f"{TriggerGate.PREFIX}*"))


def test_jobs_of_one_group_share_one_message(client: TestClient, registered_model: str) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    ids = [_submit(client, registered_model, f"film {i}") for i in range(6)]
    assert broker.llen(PRIORITY_QUEUES["normal"]) == 1  # one message for six jobs
    (key,) = _trigger_keys()
    assert broker.get(key).decode() == ids[0]  # held by the first job's message
    _submit(client, registered_model, "urgent film", priority="high")  # another group: its own message
    assert broker.llen(PRIORITY_QUEUES["high"]) == 1 and len(_trigger_keys()) == 2


def test_a_trigger_gathers_its_riders_after_its_own_job_ran_elsewhere(
    client: TestClient, registered_model: str
) -> None:
    settings = get_settings()
    gate = trigger_gate(settings)
    assert gate is not None
    first, *riders = [_submit(client, registered_model, f"film {i}") for i in range(4)]
    (key,) = _trigger_keys()
    with session_scope() as session:  # another batch already took and finished the first job
        claim = jobs_repo.claim(session, uuid.UUID(first), lease_seconds=60)
        assert claim is not None
        assert jobs_repo.finish_many(session, [(claim, JobStatus.succeeded, [{"label": "x"}], None)]) == {claim.job_id}
    batch = gather(uuid.UUID(first), key, settings, gate)
    assert isinstance(batch, Batch)
    assert sorted(str(m.claim.job_id) for m in batch.members) == sorted(riders)
    assert batch.left_over is None
    assert _trigger_keys() == []  # released: the next job publishes a message of its own


def test_a_full_batch_reports_what_is_left(client: TestClient, registered_model: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 2}')
    from seqserve.shared.config import reset_settings

    reset_settings()
    settings = get_settings()
    first, second, third = [_submit(client, registered_model, f"film {i}", "low" if i == 2 else "normal")
                            for i in range(3)]
    (key, _) = sorted(_trigger_keys(), key=lambda k: not k.endswith(":normal"))
    batch = gather(uuid.UUID(first), key, settings, trigger_gate(settings))
    assert isinstance(batch, Batch)
    assert [str(m.claim.job_id) for m in batch.members] == [first, second]
    assert batch.left_over == "low"  # the worker publishes a trigger for it


def test_finish_many_writes_only_the_attempts_that_still_hold_their_jobs(
    client: TestClient, registered_model: str
) -> None:
    kept, cancelled = [uuid.UUID(_submit(client, registered_model, f"film {i}")) for i in range(2)]
    with session_scope() as session:
        claims = [jobs_repo.claim(session, job_id, lease_seconds=60) for job_id in (kept, cancelled)]
    assert client.post(f"/v1/jobs/{cancelled}/cancel").status_code == 200
    with session_scope() as session:
        written = jobs_repo.finish_many(session, [(c, JobStatus.succeeded, [{"label": "x"}], None) for c in claims])
    assert written == {kept}
    assert client.get(f"/v1/jobs/{kept}").json()["status"] == "succeeded"
    assert client.get(f"/v1/jobs/{cancelled}").json()["status"] == "cancelled"


def test_a_job_larger_than_the_batch_limit_still_runs_from_a_trigger(
    client: TestClient, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 2}')
    from seqserve.shared.config import reset_settings

    reset_settings()
    settings = get_settings()
    first = _submit(client, registered_model, "short")
    body = {"kind": "classify", "model": registered_model, "inputs": ["one", "two", "three"]}
    large = client.post("/v1/jobs", json=body).json()["id"]  # rides on the first job's message
    (key,) = _trigger_keys()
    with session_scope() as session:  # the first job ran elsewhere
        claim = jobs_repo.claim(session, uuid.UUID(first), lease_seconds=60)
        assert claim is not None
        jobs_repo.finish_many(session, [(claim, JobStatus.succeeded, [{"label": "x"}], None)])
    batch = gather(uuid.UUID(first), key, settings, trigger_gate(settings))
    assert isinstance(batch, Batch)
    assert [str(m.claim.job_id) for m in batch.members] == [large]  # alone, over the limit


def test_riders_run_while_the_trigger_job_is_held_and_the_message_looks_again(
    client: TestClient, registered_model: str
) -> None:
    settings = get_settings()
    first, *riders = [_submit(client, registered_model, f"film {i}") for i in range(3)]
    (key,) = _trigger_keys()
    with session_scope() as session:  # another attempt holds the first job (its worker may be dead)
        assert jobs_repo.claim(session, uuid.UUID(first), lease_seconds=60) is not None
    batch = gather(uuid.UUID(first), key, settings, trigger_gate(settings))
    assert isinstance(batch, Batch)
    assert sorted(str(m.claim.job_id) for m in batch.members) == sorted(riders)
    assert batch.trigger_lease_left is not None and 55 < batch.trigger_lease_left <= 60


def _envelope(raw: bytes) -> dict:
    """A queued message without the values that differ per message."""
    import base64
    import json

    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    for key in ("id", "root_id", "origin"):
        message["headers"].pop(key)
    for key in ("correlation_id", "delivery_tag", "reply_to"):
        message["properties"].pop(key)
    return message


def test_a_job_message_is_what_kombu_would_queue(db: str) -> None:
    from seqserve.shared.queueing import make_celery, publish_job

    broker = redis.Redis.from_url(REDIS_URL)
    job_id, key = str(uuid.uuid4()), TriggerGate.key(1, "classify", "k", "high")
    celery = make_celery(get_settings())
    celery.send_task("seqserve.jobs.run", args=[job_id], kwargs={"trigger": key}, queue=PRIORITY_QUEUES["high"])
    publish_job(celery, job_id, "high", key)  # the direct path on a Redis broker
    by_kombu, direct = broker.lrange(PRIORITY_QUEUES["high"], 0, -1)[::-1]
    assert _envelope(direct) == _envelope(by_kombu)
    assert _envelope(direct)["body"][:2] == [[job_id], {"trigger": key}]


def test_the_first_job_of_a_group_sets_its_key_and_queues_its_message_at_once(db: str) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    gate = trigger_gate(get_settings())
    assert gate is not None
    key, first, second = TriggerGate.key(1, "classify", "k", "low"), str(uuid.uuid4()), str(uuid.uuid4())
    assert gate.publish_if_first(key, first, "low") is True
    assert gate.publish_if_first(key, second, "low") is False  # rides on the first one's message
    (queued,) = broker.lrange(PRIORITY_QUEUES["low"], 0, -1)
    assert _envelope(queued)["body"][:2] == [[first], {"trigger": key}]
    assert broker.get(key).decode() == first and 0 < broker.pttl(key) <= get_settings().trigger_ttl_seconds * 1000
