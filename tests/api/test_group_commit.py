"""Group commit of concurrent submissions (services/api/jobs/group_commit.py), against the real
Postgres and Redis: submissions that arrive together share one INSERT and one wake-up, each
answered only once its row is committed; one request's failed check fails only that request;
a refused publish withdraws the whole group."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from seqserve.services.api.caches import ApiCaches
from seqserve.services.api.errors import ApiError
from seqserve.services.api.jobs import service
from seqserve.services.api.jobs.group_commit import SubmitGroups
from seqserve.services.api.jobs.service import JobQueue
from seqserve.services.api.main import create_app
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.db.models import Job
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs.schemas import JobCreate, JobRead
from seqserve.shared.queueing import broker_redis, make_celery, queue_for
from tests.api.conftest import job_count
from tests.conftest import create_key


def _prepare(model: str, text: str, caches: ApiCaches):  # type: ignore[no-untyped-def]
    body = JobCreate(kind="classify", model=model, inputs=[text])
    return partial(service.prepare, caches=caches, body=body, settings=get_settings(), job_id=uuid.uuid4(),
                   team="admin")


async def _submit_together(groups: SubmitGroups, prepares: list) -> list[JobRead | BaseException]:  # type: ignore[type-arg]
    # gather starts every submission before the writer task first runs: one group.
    return await asyncio.gather(*(groups.submit(p) for p in prepares), return_exceptions=True)


def test_concurrent_submissions_share_one_insert_and_one_wakeup(registered_model: str) -> None:
    settings = get_settings()
    groups, caches = SubmitGroups(JobQueue(make_celery(settings), broker_redis(settings))), ApiCaches()
    prepares = [_prepare(registered_model, f"text {i}", caches) for i in range(6)]
    prepares.insert(3, _prepare("no-such-model", "lost", caches))
    try:
        outcomes = asyncio.run(_submit_together(groups, prepares))
    finally:
        groups.close()
    refused = outcomes.pop(3)
    assert isinstance(refused, ApiError) and refused.code == "model_not_found"
    assert all(isinstance(o, JobRead) and o.status == "queued" for o in outcomes)
    with session_scope() as session:
        stored = {row.id: row.inputs for row in session.execute(select(Job.id, Job.inputs))}
    assert stored == {o.id: [f"text {i}"] for i, o in enumerate(outcomes)}  # type: ignore[union-attr]
    # One wake-up for the whole group: the worker drains it.
    assert redis.Redis.from_url(settings.broker_url).llen(queue_for("normal")) == 1


def test_refused_publish_withdraws_every_job_of_the_group(registered_model: str, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    settings = get_settings()
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)  # nothing listens on port 1
    groups, caches = SubmitGroups(JobQueue(make_celery(settings), dead)), ApiCaches()
    try:
        outcomes = asyncio.run(_submit_together(groups, [_prepare(registered_model, f"t{i}", caches) for i in range(4)]))
    finally:
        groups.close()
    assert all(isinstance(o, ApiError) and o.code == "broker_unavailable" and o.status == 503 for o in outcomes)
    assert job_count() == 0


def test_a_lone_submission_is_written_at_once_and_later_ones_form_new_groups(registered_model: str) -> None:
    settings = get_settings()
    groups, caches = SubmitGroups(JobQueue(make_celery(settings), broker_redis(settings))), ApiCaches()

    async def one_after_another() -> list[JobRead]:
        return [await groups.submit(_prepare(registered_model, f"x{i}", caches)) for i in range(3)]

    try:
        jobs = asyncio.run(one_after_another())
    finally:
        groups.close()
    assert len({job.id for job in jobs}) == 3 and job_count() == 3
    assert redis.Redis.from_url(settings.broker_url).llen(queue_for("normal")) == 3  # one group each


def test_concurrent_requests_through_the_route_are_each_answered_with_their_own_stored_job(
    client: TestClient, registered_model: str
) -> None:
    def submit(i: int) -> dict:  # type: ignore[type-arg]
        response = client.post("/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": [f"c{i}"]})
        assert response.status_code == 202, response.text
        return response.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(16)))
    with session_scope() as session:
        stored = {row.id: row.inputs for row in session.execute(select(Job.id, Job.inputs))}
    assert stored == {uuid.UUID(a["id"]): [f"c{i}"] for i, a in enumerate(answers)}


def test_with_group_commit_off_the_old_path_still_stores_and_wakes_each_job(
    db: str, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_SUBMIT_GROUP_COMMIT", "false")
    reset_settings()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as off:
        for i in range(3):
            assert off.post("/v1/jobs", json={"kind": "classify", "model": registered_model,
                                              "inputs": [f"o{i}"]}).status_code == 202
    assert job_count() == 3
    assert redis.Redis.from_url(get_settings().broker_url).llen(queue_for("normal")) == 3
