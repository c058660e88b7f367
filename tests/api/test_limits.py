"""Per-key limits on submissions (services/api/limits.py): 429 with Retry-After and the
RateLimit headers, inputs per minute apart from submissions, max priority, windows that
reset, the defaults, Redis down, and the keys API. Counters live in the test run's Redis
under a prefix of each test's own."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from seqserve.services.api.limits import Limit, LocalWindows, RedisWindows
from seqserve.services.api.main import create_app
from seqserve.shared.auth.limits import KeyLimits
from seqserve.shared.auth.service import create
from seqserve.shared.config import reset_settings
from seqserve.shared.db.batch_models import Batch
from seqserve.shared.db.session import session_scope
from tests import processes
from tests.api.conftest import job_count
from tests.conftest import REDIS_URL

Client = Callable[..., TestClient]


@pytest.fixture()
def limits_env(db: str, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """This test's own counters (a prefix no other test uses); more settings may follow."""
    monkeypatch.setenv("SEQSERVE_RATE_LIMIT_PREFIX", f"test-limits:{uuid.uuid4().hex}")
    reset_settings()
    return monkeypatch


@pytest.fixture()
def app_client(limits_env: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app without a key of its own: each call sends the key under test."""
    with TestClient(create_app()) as client:
        yield client


def limited_key(team: str = "red", **limits: str | int | None) -> dict[str, str]:
    """A jobs:write key with these limits, as request headers."""
    with session_scope() as session:
        _, secret = create(session, f"k-{uuid.uuid4().hex[:12]}", team, ["jobs:write", "jobs:read"],
                           limits=KeyLimits(**limits))  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {secret}"}


def submit(client: TestClient, headers: dict[str, str], model: str, inputs: int = 1, priority: str = "normal"):  # type: ignore[no-untyped-def]
    body = {"kind": "classify", "model": model, "inputs": [f"text {i}" for i in range(inputs)], "priority": priority}
    return client.post("/v1/jobs", json=body, headers=headers)


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("seqserve_jobs_rejected_total", {"reason": reason}) or 0.0


def remaining(response, name: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(r, t) of one policy in the RateLimit header."""
    match = re.search(rf'"{name}";r=(\d+);t=(\d+)', response.headers["RateLimit"])
    assert match is not None, response.headers["RateLimit"]
    return int(match.group(1)), int(match.group(2))


def test_submissions_over_the_limit_get_429_with_the_headers_and_store_nothing(
        app_client: TestClient, registered_model: str) -> None:
    key = limited_key(rate_limit="3/min")
    counted = rejected("rate_limited")
    for left in (2, 1, 0):
        response = submit(app_client, key, registered_model)
        assert response.status_code == 202, response.text
        assert response.headers["RateLimit-Policy"] == '"submissions";q=3;w=60'
        r, t = remaining(response, "submissions")
        assert r == left and 1 <= t <= 60
    refused = submit(app_client, key, registered_model)
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/json"
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and error["field"] == "submissions" and "3 per 60 s" in error["message"]
    assert refused.headers["RateLimit-Policy"] == '"submissions";q=3;w=60'
    r, t = remaining(refused, "submissions")
    assert r == 0 and 1 <= t <= 60 and refused.headers["Retry-After"] == str(t)
    assert job_count() == 3
    assert rejected("rate_limited") == counted + 1


def test_inputs_per_minute_count_apart_from_submissions(app_client: TestClient, registered_model: str) -> None:
    key = limited_key(rate_limit="10/min", inputs_per_minute=5)
    first = submit(app_client, key, registered_model, inputs=3)
    assert first.status_code == 202
    assert first.headers["RateLimit-Policy"] == '"submissions";q=10;w=60, "inputs";q=5;w=60'
    assert remaining(first, "submissions")[0] == 9 and remaining(first, "inputs")[0] == 2
    refused = submit(app_client, key, registered_model, inputs=3)
    assert refused.status_code == 429 and refused.json()["error"]["field"] == "inputs"
    # The refusal charged nothing: the submission it would have been is still there.
    assert remaining(refused, "submissions")[0] == 9 and remaining(refused, "inputs")[0] == 2
    last = submit(app_client, key, registered_model, inputs=2)
    assert last.status_code == 202 and remaining(last, "submissions")[0] == 8 and remaining(last, "inputs")[0] == 0
    whole = submit(app_client, key, registered_model, inputs=6)  # never admissible: not a 429 to retry
    assert whole.status_code == 422 and whole.json()["error"]["code"] == "inputs_over_quota"
    assert whole.json()["error"]["field"] == "inputs"
    assert job_count() == 2


def test_a_priority_above_the_keys_max_is_refused(app_client: TestClient, registered_model: str) -> None:
    key = limited_key(max_priority="normal")
    refused = submit(app_client, key, registered_model, priority="high")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "priority_not_allowed" and refused.json()["error"]["field"] == "priority"
    assert job_count() == 0
    assert submit(app_client, key, registered_model, priority="normal").status_code == 202
    assert submit(app_client, key, registered_model, priority="low").status_code == 202
    assert "RateLimit" not in submit(app_client, key, registered_model, priority="low").headers


def test_the_window_resets(app_client: TestClient, registered_model: str) -> None:
    key = limited_key(rate_limit="1/s")
    assert submit(app_client, key, registered_model).status_code == 202
    refused = submit(app_client, key, registered_model)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    time.sleep(1.2)  # the 1 s window began before the first submission answered
    again = submit(app_client, key, registered_model)
    assert again.status_code == 202 and remaining(again, "submissions")[0] == 0


def test_keys_without_limits_are_unaffected_and_defaults_apply_to_keys_without_their_own(
        limits_env: pytest.MonkeyPatch, registered_model: str) -> None:
    with TestClient(create_app()) as client:
        free = limited_key()
        for _ in range(5):
            response = submit(client, free, registered_model, inputs=3, priority="high")
            assert response.status_code == 202 and "RateLimit" not in response.headers
    limits_env.setenv("SEQSERVE_RATE_LIMIT_DEFAULT", "1/min")
    limits_env.setenv("SEQSERVE_RATE_LIMIT_MAX_PRIORITY", "normal")
    reset_settings()
    with TestClient(create_app()) as client:
        assert submit(client, free, registered_model, priority="high").status_code == 403
        assert submit(client, free, registered_model).headers["RateLimit-Policy"] == '"submissions";q=1;w=60'
        assert submit(client, free, registered_model).status_code == 429
        exempt = limited_key(rate_limit="0", max_priority="high")  # a key's own 0: unlimited
        for _ in range(3):
            assert submit(client, exempt, registered_model, priority="high").status_code == 202


def test_redis_down_answers_503_like_the_broker_and_stores_nothing(
        limits_env: pytest.MonkeyPatch, registered_model: str) -> None:
    limits_env.setenv("SEQSERVE_RATE_LIMIT_REDIS_URL", f"redis://127.0.0.1:{processes.free_port()}/0")
    reset_settings()
    with TestClient(create_app()) as client:
        refused = submit(client, limited_key(rate_limit="5/min"), registered_model)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert refused.json()["error"]["code"] == "broker_unavailable"
        assert job_count() == 0
        assert submit(client, limited_key(), registered_model).status_code == 202  # no counters to reach


def test_keys_api_creates_and_lists_limits_and_refuses_bad_ones(app_client: TestClient) -> None:
    with session_scope() as session:
        _, secret = create(session, "root", "admin", ["admin"])
    admin = {"Authorization": f"Bearer {secret}"}
    body = {"name": "bulk", "team": "red", "scopes": ["jobs:write"], "rate_limit": "20/s", "inputs_per_minute": 600,
            "max_priority": "low"}
    created = app_client.post("/v1/keys", json=body, headers=admin)
    assert created.status_code == 201, created.text
    listed = {key["name"]: key for key in app_client.get("/v1/keys", headers=admin).json()}
    assert (listed["bulk"]["rate_limit"], listed["bulk"]["inputs_per_minute"], listed["bulk"]["max_priority"]) == (
        "20/s", 600, "low")
    assert (listed["root"]["rate_limit"], listed["root"]["max_priority"]) == (None, None)  # the defaults
    for field, value in (("rate_limit", "5/hour"), ("rate_limit", "-1/s"), ("rate_limit", 5),
                         ("inputs_per_minute", -1), ("max_priority", "urgent")):
        refused = app_client.post("/v1/keys", json=body | {"name": "bad", field: value}, headers=admin)
        assert refused.status_code == 422, (field, value, refused.text)
        assert refused.json()["error"]["field"] == field


@pytest.mark.parametrize("windows", ["redis", "local"])
def test_both_counter_stores_take_all_limits_or_none(db: str, windows: str) -> None:
    async def run() -> None:
        store = RedisWindows(REDIS_URL) if windows == "redis" else LocalWindows()
        prefix = f"test-windows:{uuid.uuid4().hex}"
        submissions = Limit("submissions", f"{prefix}:s", 2, 1, 1)

        def inputs(cost: int) -> Limit:
            return Limit("inputs", f"{prefix}:i", 10, 60, cost)

        try:
            first = await store.take([submissions, inputs(4)])
            assert first.refused is None and first.used == [1, 4]
            refused = await store.take([submissions, inputs(7)])
            assert refused.refused == inputs(7) and refused.used == [1, 4]  # nothing charged
            second = await store.take([submissions, inputs(6)])
            assert second.refused is None and second.used == [2, 10]
            third = await store.take([submissions, inputs(0)])
            assert third.refused == submissions and 0 < third.reset[0] <= 1
            await asyncio.sleep(third.reset[0] + 0.2)
            fourth = await store.take([submissions, inputs(0)])
            assert fourth.refused is None and fourth.used == [1, 10] and fourth.reset[1] > 50
        finally:
            await store.close()

    asyncio.run(run())


def test_a_batch_counts_as_one_submission_at_its_priority(app_client: TestClient, registered_model: str) -> None:
    """Corpus batches take the same limiter: one submission each, priority capped, inputs not charged."""
    headers = limited_key(rate_limit="1/min", inputs_per_minute=1, max_priority="low")
    lines = "".join(f'{{"custom_id": "c{i}", "input": "text {i}"}}\n' for i in range(5)).encode()
    source = app_client.post("/v1/files", headers=headers, files={"file": ("corpus.jsonl", lines)})
    assert source.status_code == 201, source.text
    body = {"kind": "classify", "model": registered_model, "input_file": source.json()["id"]}

    high = app_client.post("/v1/batches", headers=headers, json=body | {"priority": "high"})
    assert high.status_code == 403 and high.json()["error"] == {
        "code": "priority_not_allowed", "message": "this key may submit at priority 'low' at most", "field": "priority"}
    first = app_client.post("/v1/batches", headers=headers, json=body)  # 5 inputs > the 1-a-minute input quota
    assert first.status_code == 202, first.text
    assert first.headers["RateLimit"].startswith('"submissions";r=0;')
    second = app_client.post("/v1/batches", headers=headers, json=body)
    assert second.status_code == 429 and second.json()["error"]["field"] == "submissions"
    assert int(second.headers["Retry-After"]) >= 1
    with session_scope() as session:
        assert session.query(Batch).filter(Batch.input_file_id == source.json()["id"]).count() == 1


def test_a_keys_limits_change_over_the_api_and_apply_to_its_next_submission(
        app_client: TestClient, registered_model: str) -> None:
    from seqserve.shared.audit.repository import AuditFilter, list_page

    with session_scope() as session:
        _, root = create(session, "root", "admin", ["admin"])
    admin = {"Authorization": f"Bearer {root}"}
    key = limited_key(rate_limit="1/min")
    name = next(k["name"] for k in app_client.get("/v1/keys", headers=admin).json() if k["name"].startswith("k-"))
    assert submit(app_client, key, registered_model).status_code == 202
    assert submit(app_client, key, registered_model).status_code == 429
    changed = app_client.patch(f"/v1/keys/{name}/limits", json={"rate_limit": "100/min", "max_priority": "low"},
                               headers=admin)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["rate_limit"], changed.json()["max_priority"]) == ("100/min", "low")
    assert submit(app_client, key, registered_model, priority="low").status_code == 202  # a new policy, a new window
    assert submit(app_client, key, registered_model, priority="normal").status_code == 403
    back = app_client.patch(f"/v1/keys/{name}/limits", json={"max_priority": None}, headers=admin)
    assert back.json()["max_priority"] is None and back.json()["rate_limit"] == "100/min"  # only what was sent
    assert submit(app_client, key, registered_model, priority="normal").status_code == 202
    with session_scope() as session:
        events = list_page(session, AuditFilter(action="key.limits"), 10, None)
        assert [e.detail["after"] for e in events] == [{"max_priority": None},
                                                       {"max_priority": "low", "rate_limit": "100/min"}]
        assert events[-1].detail["before"] == {"max_priority": None, "rate_limit": "1/min"}
    for body, status, field in (({}, 422, None), ({"rate_limit": "9/hour"}, 422, "rate_limit"),
                                ({"inputs_per_minute": 2**31 * 4}, 422, "inputs_per_minute"),
                                ({"team": "blue"}, 422, "team")):
        refused = app_client.patch(f"/v1/keys/{name}/limits", json=body, headers=admin)
        assert refused.status_code == status, (body, refused.text)
        if field:
            assert refused.json()["error"]["field"] == field
    assert app_client.patch("/v1/keys/nobody/limits", json={"rate_limit": "0"}, headers=admin).status_code == 404
    assert app_client.patch(f"/v1/keys/{name}/limits", json={"rate_limit": "0"}, headers=key).status_code == 403
    app_client.post(f"/v1/keys/{name}/revoke", headers=admin)
    revoked = app_client.patch(f"/v1/keys/{name}/limits", json={"rate_limit": "0"}, headers=admin)
    assert revoked.status_code == 409 and revoked.json()["error"]["code"] == "key_revoked"
