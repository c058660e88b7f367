"""Job deadlines and retention on the real Postgres and Redis: submission validates the
deadline, the claim never takes an expired job, the sweep expires and purges in bounded batches."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from seqserve.services.worker import maintenance
from seqserve.services.worker.app import app as worker_app
from seqserve.shared.config import Settings, get_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import JobStatus
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import lifecycle
from tests.api.conftest import job_count
from tests.conftest import claim_group_of, create_key, finish


def _submit(client: TestClient, model: str, **extra: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/jobs", json={"kind": "classify", "model": model, "inputs": ["fine", "dull"], **extra})


@pytest.mark.parametrize(("extra", "field"), [
    ({"max_queue_seconds": 0}, "max_queue_seconds"),
    ({"max_queue_seconds": 10**9}, "max_queue_seconds"),
    ({"max_queue_seconds": "5"}, "max_queue_seconds"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "2099-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no timezone
    ({"expires_at": 1893456000}, "expires_at"),
])
def test_bad_deadlines_are_422_naming_the_field(client: TestClient, registered_model: str, extra: dict,
                                                 field: str) -> None:
    response = _submit(client, registered_model, **extra)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert job_count() == 0


def test_the_earlier_deadline_wins_and_is_read_back(client: TestClient, registered_model: str) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    job = _submit(client, registered_model, expires_at=soon.isoformat(), max_queue_seconds=3600).json()
    assert datetime.fromisoformat(job["expires_at"]) == soon
    later = _submit(client, registered_model, max_queue_seconds=60).json()
    assert 50 < (datetime.fromisoformat(later["expires_at"]) - datetime.now(UTC)).total_seconds() <= 60
    assert client.get(f"/v1/jobs/{later['id']}").json()["expires_at"] == later["expires_at"]
    assert _submit(client, registered_model).json()["expires_at"] is None


def test_the_claim_skips_an_expired_job_and_the_sweep_expires_it(client: TestClient, registered_model: str) -> None:
    expiring = _submit(client, registered_model, max_queue_seconds=0.3).json()["id"]
    time.sleep(0.6)
    assert claim_group_of(uuid.UUID(expiring)) == []  # a worker woken now never runs it
    lasting = _submit(client, registered_model).json()["id"]
    assert maintenance.sweep_jobs(worker_app, None, get_settings()) == (1, 0)
    job = client.get(f"/v1/jobs/{expiring}").json()
    assert job["status"] == JobStatus.expired.value and job["started_at"] is None and job["attempts"] == 0
    assert "deadline" in job["error"]
    assert client.get(f"/v1/jobs/{lasting}").json()["status"] == "queued"
    assert client.post(f"/v1/jobs/{expiring}/cancel").status_code == 409
    listed = client.get("/v1/jobs", params={"status": "expired"}).json()["items"]
    assert [item["id"] for item in listed] == [expiring]


def test_the_expiry_sweep_takes_bounded_batches(client: TestClient, registered_model: str) -> None:
    for _ in range(5):
        _submit(client, registered_model, max_queue_seconds=0.2)
    time.sleep(0.4)
    with session_scope() as session:
        assert len(lifecycle.expire_due(session, utcnow(), limit=3)) == 3
    with session_scope() as session:
        assert len(lifecycle.expire_due(session, utcnow(), limit=3)) == 2


def _finished_job(client: TestClient, model: str) -> str:
    job_id = client.post("/v1/jobs", json={"kind": "classify", "model": model, "inputs": ["a", "b", "c"]}).json()["id"]
    (claimed,) = claim_group_of(uuid.UUID(job_id))
    assert finish(claimed, JobStatus.succeeded, [{"label": "positive"}] * 3)
    return job_id


def test_retention_purges_per_team_keeping_the_metadata(db: str, registered_model: str) -> None:
    from seqserve.services.api.main import create_app

    ml_key, other_key = create_key(team="ml"), create_key(team="other")
    with TestClient(create_app()) as client:
        client.headers["Authorization"] = f"Bearer {ml_key}"
        ml_job = _finished_job(client, registered_model)
        client.headers["Authorization"] = f"Bearer {other_key}"
        other_job = _finished_job(client, registered_model)
        time.sleep(0.5)
        # ml keeps jobs 0.3 s, every other team a day: only ml's finished job is purged.
        settings = Settings(retention_days=1, retention_team_days={"ml": 0.3 / 86400})
        with session_scope() as session:
            assert lifecycle.purge_due(session, settings, utcnow(), limit=10) == 1
        with session_scope() as session:  # a purged job is not purged twice
            assert lifecycle.purge_due(session, settings, utcnow(), limit=10) == 0
        assert client.get(f"/v1/jobs/{other_job}").json()["result"] is not None
        client.headers["Authorization"] = f"Bearer {ml_key}"
        purged = client.get(f"/v1/jobs/{ml_job}").json()
    assert purged["purged_at"] is not None and purged["result"] is None
    assert purged["status"] == "succeeded" and purged["num_inputs"] == 3 and purged["finished_at"] is not None


def test_retention_settings_refuse_non_positive_days() -> None:
    with pytest.raises(ValueError, match="retention days"):
        Settings(retention_team_days={"ml": 0})
    with pytest.raises(ValueError):
        Settings(retention_days=0)
