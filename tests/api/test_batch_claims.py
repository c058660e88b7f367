"""The worker's batch claim, on the real Postgres: the single-statement claim Postgres uses and
the several-statement claim other databases use take the same jobs, in the same order, and
report the same left-over and lease."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from seqserve.services.api.main import create_app
from seqserve.services.worker import batching
from seqserve.services.worker.batching import Batch, LeaseHeld, gather
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Job, JobStatus
from seqserve.shared.db.session import connection_scope, session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.queueing import TriggerGate, trigger_gate

PATHS = ["single-statement", "several-statements"]


@pytest.fixture(params=PATHS)
def claim_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "several-statements":
        monkeypatch.setattr(batching, "_single_statement", lambda: False)
    return str(request.param)


@pytest.fixture()
def client(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 4}')
    monkeypatch.setenv("SEQSERVE_COALESCE_TRIGGERS", "false")  # every job its own message: gather by id
    reset_settings()
    batching._versions.clear()  # version ids restart with every test database
    with TestClient(create_app()) as test_client:
        yield test_client


def _submit(client: TestClient, model: str, inputs: int = 1, priority: str = "normal") -> uuid.UUID:
    body = {"kind": "classify", "model": model, "inputs": [f"film {i}" for i in range(inputs)], "priority": priority}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


def _gather(job_id: uuid.UUID, trigger: str | None = None) -> Batch | LeaseHeld | None:
    settings = get_settings()
    return gather(job_id, trigger, settings, trigger_gate(settings) if trigger else None)


def _ids(batch: Batch | LeaseHeld | None) -> list[uuid.UUID]:
    assert isinstance(batch, Batch)
    return [m.claim.job_id for m in batch.members]


def test_the_job_leads_and_companions_fill_the_limit_in_priority_then_age_order(
    client: TestClient, registered_model: str, claim_path: str
) -> None:
    old, new = _submit(client, registered_model), _submit(client, registered_model)
    urgent = _submit(client, registered_model, priority="high")
    lead = _submit(client, registered_model)
    left = _submit(client, registered_model, priority="low")
    batch = _gather(lead)
    assert _ids(batch) == [lead, urgent, old, new]  # four inputs: the classify limit here
    assert isinstance(batch, Batch) and batch.left_over == "low" and batch.full
    assert all(m.claim.attempt == 1 for m in batch.members)
    with session_scope() as session:
        assert session.get(Job, left).status == "queued"
        assert {session.get(Job, i).status for i in (lead, urgent, old, new)} == {"running"}


def test_a_job_that_does_not_fit_is_not_overtaken(client: TestClient, registered_model: str, claim_path: str) -> None:
    lead = _submit(client, registered_model, inputs=2)
    big = _submit(client, registered_model, inputs=3)  # 2 + 3 > 4
    small = _submit(client, registered_model)
    batch = _gather(lead)
    assert _ids(batch) == [lead]  # first in, first out: the small job waits behind the big one
    assert isinstance(batch, Batch) and batch.left_over == "normal"
    assert _ids(_gather(big)) == [big, small]


def test_a_job_larger_than_the_limit_runs_alone(client: TestClient, registered_model: str, claim_path: str) -> None:
    huge = _submit(client, registered_model, inputs=6)
    other = _submit(client, registered_model)
    batch = _gather(huge)
    assert _ids(batch) == [huge] and isinstance(batch, Batch) and batch.left_over == "normal"
    assert _ids(_gather(other)) == [other]


def test_a_job_under_a_live_lease_is_held_and_a_lapsed_one_is_taken_over(
    client: TestClient, registered_model: str, claim_path: str
) -> None:
    job = _submit(client, registered_model)
    assert _ids(_gather(job)) == [job]
    held = _gather(job)  # the first attempt still holds it
    assert isinstance(held, LeaseHeld)
    assert get_settings().job_lease_seconds - 5 < held.seconds_left <= get_settings().job_lease_seconds
    with connection_scope() as connection:  # the first attempt's worker died long ago
        connection.execute(update(Job).where(Job.id == job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    batch = _gather(job)
    assert _ids(batch) == [job] and isinstance(batch, Batch) and batch.members[0].claim.attempt == 2


def test_a_trigger_whose_job_ran_gathers_its_group_the_first_one_even_if_large(
    client: TestClient, registered_model: str, claim_path: str
) -> None:
    done = _submit(client, registered_model)
    riders = [_submit(client, registered_model, inputs=5), _submit(client, registered_model)]
    with session_scope() as session:
        claimed = jobs_repo.claim(session, done, lease_seconds=60)
        assert claimed is not None
        jobs_repo.finish(session, claimed, JobStatus.succeeded, result=[{"label": "x"}])
        row = session.get(Job, done)
        key = TriggerGate.key(row.model_version_id, row.kind, row.batch_key, "normal")
    batch = _gather(done, key)
    assert _ids(batch) == [riders[0]]  # alone over the limit, taken because the batch was empty
    assert isinstance(batch, Batch) and batch.left_over == "normal" and batch.trigger_lease_left is None
    assert _gather(done) is None  # without a trigger a finished job's message has nothing to do


def test_the_last_look_after_the_delay_counts_what_the_batch_holds(
    client: TestClient, registered_model: str, claim_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_DELAY_MS", "300")
    reset_settings()
    lead = _submit(client, registered_model, inputs=3)
    late = [_submit(client, registered_model) for _ in range(2)]
    settings = get_settings()
    with connection_scope() as connection:  # the companions arrive during the delay: hide them first
        connection.execute(update(Job).where(Job.id.in_(late)).values(status="cancelled"))
    first_look_done = False

    def sleep(seconds: float) -> None:  # the batching delay: the companions arrive meanwhile
        nonlocal first_look_done
        first_look_done = True
        with connection_scope() as conn:
            conn.execute(update(Job).where(Job.id.in_(late)).values(status="queued"))

    monkeypatch.setattr(batching.time, "sleep", sleep)
    batch = gather(lead, None, settings, None)
    assert first_look_done
    assert _ids(batch) == [lead, late[0]]  # 3 + 1 inputs: the second companion does not fit
    assert isinstance(batch, Batch) and batch.left_over == "normal"
