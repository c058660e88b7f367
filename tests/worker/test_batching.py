"""The worker's batches, claimed from the job table on the real Postgres (and SQLite, the
embedded default): one statement takes a group's next batch in priority-then-age order up
to the kind's input limit, a job that does not fit leads the next batch, a job larger than
the limit runs alone, a live lease is respected and a lapsed one taken over."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from seqserve.services.api.main import create_app
from seqserve.services.worker import batching
from seqserve.services.worker.batching import Batch, first_batch, next_batch
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.migrate import upgrade
from seqserve.shared.db.models import Job, JobStatus, ModelVersion
from seqserve.shared.db.session import dispose_engines, session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.queueing import Wakeup
from seqserve.shared.rollouts.tables import ShadowRun, ShadowStatus
from tests.conftest import built_context, create_key


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        upgrade(url)
        monkeypatch.setenv("SEQSERVE_DATABASE_URL", url)
        dispose_engines()
    return str(request.param)


@pytest.fixture()
def client(database: str, registered_model: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 4}')
    reset_settings()
    if database == "sqlite":
        from tests.conftest import register_tiny

        register_tiny()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _submit(client: TestClient, inputs: int = 1, priority: str = "normal") -> uuid.UUID:
    body = {"kind": "classify", "model": "tiny-sst2", "inputs": [f"film {i}" for i in range(inputs)],
            "priority": priority}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


def wakeup_of(job_id: uuid.UUID) -> Wakeup:
    with session_scope() as session:
        job = jobs_repo.get(session, job_id)
        assert job is not None
        return Wakeup(version_id=job.model_version_id, kind=job.kind, batch_key=job.batch_key, priority=job.priority)


def _ids(batch: Batch | None) -> list[uuid.UUID]:
    assert batch is not None
    return [m.claim.job_id for m in batch.members]


def _status(job_id: uuid.UUID) -> str:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status


def test_a_batch_fills_the_limit_in_priority_then_age_order(client: TestClient) -> None:
    old, new = _submit(client), _submit(client)
    urgent = _submit(client, priority="high")
    last = _submit(client)
    left = _submit(client, priority="low")
    context = built_context()
    batch = first_batch(wakeup_of(last), context)
    assert _ids(batch) == [urgent, old, new, last]  # four inputs: the classify limit here
    assert batch is not None and batch.full and all(m.claim.attempt == 1 for m in batch.members)
    assert _status(left) == "queued" and {_status(i) for i in (urgent, old, new, last)} == {"running"}
    assert _ids(next_batch(batch.group, context)) == [left]
    assert next_batch(batch.group, context) is None  # the group is empty: the wake-up is done


def test_low_priority_jobs_join_a_pass_only_when_no_interactive_job_waits(client: TestClient, database: str) -> None:
    """A corpus chunk queued before an interactive job of its group does not share its pass:
    the interactive job runs in a pass of its own size, then the low-priority ones together."""
    chunk = _submit(client, inputs=2, priority="low")
    single = _submit(client)
    later_chunk = _submit(client, priority="low")
    context = built_context()
    batch = first_batch(wakeup_of(chunk), context)
    assert _ids(batch) == [single]  # room for three more inputs, but they are low priority
    assert _status(chunk) == _status(later_chunk) == "queued"
    assert batch is not None and not jobs_repo.drained_by(batch.members)  # low jobs are still queued
    assert _ids(next_batch(batch.group, context)) == [chunk, later_chunk]  # alone, low fill the pass
    assert next_batch(batch.group, context) is None


def test_an_interactive_lane_claims_only_the_priorities_it_serves(client: TestClient, database: str) -> None:
    """A worker consuming inference.high and inference.normal leaves a corpus's low-priority
    chunks of its own group to the workers that consume inference.low, and its claim counts
    the group drained once the interactive jobs are taken."""
    chunk = _submit(client, priority="low")
    single = _submit(client)
    lane = built_context()
    lane.settings = lane.settings.model_copy(update={"worker_queues": "inference.high,inference.normal"})
    batch = first_batch(wakeup_of(single), lane)
    assert _ids(batch) == [single]
    assert batch is not None and jobs_repo.drained_by(batch.members) == (database == "postgresql")
    assert next_batch(batch.group, lane) is None and _status(chunk) == "queued"
    assert _ids(next_batch(batch.group, built_context())) == [chunk]  # every queue: the chunk too
    assert batching.served_priorities("inference.low,maintenance") == ("low",)
    assert batching.served_priorities("maintenance") == ("high", "normal", "low")


def test_a_claim_says_whether_it_drained_the_group(client: TestClient, database: str) -> None:
    """Postgres counts the group's queued jobs in the claim's own snapshot: a claim that took
    them all ends the wake-up without another claim. SQLite cannot say: it always claims again."""
    first = [_submit(client) for _ in range(5)]  # the limit is 4 inputs
    context = built_context()
    batch = first_batch(wakeup_of(first[0]), context)
    assert batch is not None and len(batch.members) == 4 and not jobs_repo.drained_by(batch.members)
    rest = next_batch(batch.group, context)
    assert rest is not None and _ids(rest) == [first[4]]
    assert jobs_repo.drained_by(rest.members) == (database == "postgresql")
    later = _submit(client)  # after that claim: its own wake-up brings it
    assert _ids(first_batch(wakeup_of(later), context)) == [later]


def test_a_claim_says_which_jobs_a_shadow_run_waits_for(client: TestClient) -> None:
    shadowed, plain = _submit(client), _submit(client)
    with session_scope() as session:
        job = session.get(Job, shadowed)
        assert job is not None
        model_id = session.scalar(select(ModelVersion.model_id).where(ModelVersion.id == job.model_version_id))
        session.execute(insert(ShadowRun), [{
            "job_id": shadowed, "model_id": model_id, "alias": "production", "kind": "classify",
            "shadow_version_id": job.model_version_id, "status": ShadowStatus.waiting.value,
            "inputs": 0, "agreed": 0, "agreement_sum": 0.0}])
    batch = first_batch(wakeup_of(plain), built_context())
    assert batch is not None
    assert {m.claim.job_id: m.shadowed for m in batch.members} == {shadowed: True, plain: False}


def test_a_job_that_does_not_fit_is_not_overtaken(client: TestClient) -> None:
    lead = _submit(client, inputs=2)
    big = _submit(client, inputs=3)  # 2 + 3 > 4
    small = _submit(client)
    context = built_context()
    batch = first_batch(wakeup_of(lead), context)
    assert _ids(batch) == [lead]  # first in, first out: the small job waits behind the big one
    assert batch is not None
    assert _ids(next_batch(batch.group, context)) == [big, small]


def test_a_job_larger_than_the_limit_runs_alone(client: TestClient) -> None:
    huge = _submit(client, inputs=6)
    other = _submit(client)
    context = built_context()
    batch = first_batch(wakeup_of(other), context)
    assert _ids(batch) == [huge] and batch is not None
    assert _ids(next_batch(batch.group, context)) == [other]


def test_a_job_under_a_live_lease_is_left_alone_and_a_lapsed_one_is_taken_over(client: TestClient) -> None:
    job = _submit(client)
    context = built_context()
    assert _ids(first_batch(wakeup_of(job), context)) == [job]
    assert first_batch(wakeup_of(job), context) is None  # the first attempt still holds it
    with session_scope() as session:
        lapse = jobs_repo.next_lease_lapse(session, wakeup_of(job).group)
    lease = get_settings().job_lease_seconds
    assert lapse is not None and lease - 30 < lapse <= lease
    # The first attempt's worker died long ago (its context renews nothing).
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert first_batch(wakeup_of(job), context) is None  # a plain wake-up only claims queued jobs
    batch = first_batch(wakeup_of(job).model_copy(update={"recover": True}), context)
    assert _ids(batch) == [job] and batch is not None and batch.members[0].claim.attempt == 2


def test_the_look_after_the_delay_counts_what_the_batch_holds(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_DELAY_MS", "300")
    reset_settings()
    lead = _submit(client, inputs=3)
    late = [_submit(client) for _ in range(2)]
    with session_scope() as session:  # the companions arrive during the delay: hide them first
        session.execute(update(Job).where(Job.id.in_(late)).values(status="cancelled"))
    slept = []

    def sleep(seconds: float) -> None:  # the batching delay: the companions arrive meanwhile
        slept.append(seconds)
        with session_scope() as session:
            session.execute(update(Job).where(Job.id.in_(late)).values(status="queued"))

    monkeypatch.setattr(batching.time, "sleep", sleep)
    batch = first_batch(wakeup_of(lead), built_context())
    assert slept == [0.3]
    assert _ids(batch) == [lead, late[0]]  # 3 + 1 inputs: the second companion does not fit
    assert _status(late[1]) == "queued"


def test_results_are_written_only_by_the_attempts_that_still_hold_their_jobs(client: TestClient) -> None:
    kept, cancelled = _submit(client), _submit(client)
    batch = first_batch(wakeup_of(kept), built_context())
    assert _ids(batch) == [kept, cancelled] and batch is not None
    assert client.post(f"/v1/jobs/{cancelled}/cancel").status_code == 200
    with session_scope(autocommit=True) as session:
        outcomes = [(m.claim, JobStatus.succeeded, [{"label": "x"}], None) for m in batch.members]
        written = jobs_repo.finish_many(session, outcomes)
    assert written == {kept}
    assert client.get(f"/v1/jobs/{kept}").json()["status"] == "succeeded"
    cancelled_job = client.get(f"/v1/jobs/{cancelled}").json()
    assert cancelled_job["status"] == "cancelled" and cancelled_job["result"] is None


def test_a_lone_result_is_written_only_by_the_attempt_that_holds_its_job(client: TestClient) -> None:
    """One outcome runs as a plain execute, not the driver's executemany: its row count
    must still tell a written row from one another attempt holds."""
    job_id = _submit(client)
    batch = first_batch(wakeup_of(job_id), built_context())
    assert batch is not None and _ids(batch) == [job_id]
    stale = batch.members[0].claim
    with session_scope() as session:  # the lease lapsed and a second attempt took the job
        session.execute(update(Job).where(Job.id == job_id).values(attempts=Job.attempts + 1))
    with session_scope(autocommit=True) as session:
        assert jobs_repo.finish_many(session, [(stale, JobStatus.succeeded, [{"label": "x"}], None)]) == set()
    assert _status(job_id) == "running"
    current = dataclasses.replace(stale, attempt=stale.attempt + 1)
    with session_scope(autocommit=True) as session:
        assert jobs_repo.finish_many(session, [(current, JobStatus.succeeded, [{"label": "y"}], None)]) == {job_id}
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["result"]) == ("succeeded", [{"label": "y"}])


def _lease_left(job_id: uuid.UUID) -> float:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.lease_expires_at is not None
        expires = job.lease_expires_at
    return (expires.replace(tzinfo=None) - utcnow().replace(tzinfo=None)).total_seconds()


def test_a_renewal_extends_only_the_attempts_that_still_hold_their_jobs(client: TestClient) -> None:
    kept, moved = _submit(client), _submit(client)
    context = built_context()
    batch = first_batch(wakeup_of(kept), context)
    assert batch is not None and sorted(_ids(batch)) == sorted([kept, moved])
    with session_scope() as session:  # a short lease, and `moved` taken over by a second attempt
        session.execute(update(Job).where(Job.id.in_([kept, moved])).values(lease_expires_at=utcnow()))
        session.execute(update(Job).where(Job.id == moved).values(attempts=Job.attempts + 1))
    assert context.leases.renew() == 1
    lease = get_settings().job_lease_seconds
    assert lease - 30 < _lease_left(kept) <= lease
    assert _lease_left(moved) <= 0  # the dead attempt cannot revive another attempt's lease
    context.leases.release()
    assert context.leases.renew() == 0
