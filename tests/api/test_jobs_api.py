"""Job and model routes over HTTP (the ASGI app in-process), on the real Postgres and Redis."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from seqserve.services.api.main import create_app
from seqserve.shared.db.models import Job
from seqserve.shared.db.session import session_scope
from tests.conftest import REDIS_URL, create_key


@pytest.fixture()
def client(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _job_count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def _queued_messages(queue: str) -> list[dict[str, Any]]:
    raw = redis.Redis.from_url(REDIS_URL).lrange(queue, 0, -1)
    return [json.loads(item) for item in raw]


def test_submit_records_job_and_publishes_its_id(client: TestClient, registered_model: str) -> None:
    body = {"kind": "classify", "model": registered_model, "inputs": ["great film", "awful"]}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert job["model_version"] == 1
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    messages = _queued_messages("inference.normal")
    assert [m["headers"]["task"] for m in messages] == ["seqserve.jobs.run_batches"]
    args, kwargs, _embed = json.loads(base64.b64decode(messages[0]["body"]))
    with session_scope() as session:  # the message wakes the job's batch group
        row = session.get(Job, uuid.UUID(job["id"]))
        assert row is not None
        group = {"version_id": row.model_version_id, "kind": "classify", "batch_key": row.batch_key}
    assert args == [] and kwargs == group | {"priority": "normal", "recover": False}
    polled = client.get(f"/v1/jobs/{job['id']}").json()
    assert polled["status"] == "queued" and polled["num_inputs"] == 2 and polled["result"] is None


def test_high_priority_goes_to_its_own_queue(client: TestClient, registered_model: str) -> None:
    body = {"kind": "classify", "model": registered_model, "inputs": ["x"], "priority": "high"}
    assert client.post("/v1/jobs", json=body).status_code == 202
    assert len(_queued_messages("inference.high")) == 1
    assert _queued_messages("inference.normal") == []


@pytest.mark.parametrize("ref", ["tiny-sst2@production", "tiny-sst2:1"])
def test_alias_and_version_refs_resolve(client: TestClient, registered_model: str, ref: str) -> None:
    response = client.post("/v1/jobs", json={"kind": "classify", "model": ref, "inputs": ["ok"]})
    assert response.status_code == 202
    assert response.json()["model"] == ref and response.json()["model_version"] == 1


def test_unknown_job_is_404(client: TestClient) -> None:
    response = client.get(f"/v1/jobs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"
    assert client.get("/v1/jobs/not-a-uuid").status_code == 422


LONG = "word " * 500  # 2500 characters, over the 2000 default


@pytest.mark.parametrize(
    ("patch", "status", "code", "field"),
    [
        ({"kind": "summarize"}, 422, "unknown_kind", "kind"),
        ({"model": "nope"}, 404, "model_not_found", "model"),
        ({"model": "tiny-sst2:7"}, 404, "model_not_found", "model"),
        ({"model": "tiny-sst2@staging"}, 404, "model_not_found", "model"),
        ({"model": "bad ref!"}, 422, "invalid_model_ref", "model"),
        ({"inputs": []}, 422, "invalid_request", "inputs"),
        ({"inputs": "just a string"}, 422, "invalid_request", "inputs"),
        ({"inputs": ["ok", 3]}, 422, "invalid_request", "inputs[1]"),
        ({"inputs": ["ok", None]}, 422, "invalid_request", "inputs[1]"),
        ({"inputs": ["ok", "   "]}, 422, "invalid_request", "inputs[1]"),
        ({"inputs": ["x"] * 257}, 422, "too_many_inputs", "inputs"),
        ({"inputs": ["ok", LONG]}, 422, "input_too_long", "inputs[1]"),
        ({"params": {"beam_size": 3}}, 422, "invalid_params", "params.beam_size"),
        ({"priority": "urgent"}, 422, "invalid_request", "priority"),
        ({"extra": 1}, 422, "invalid_request", "extra"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    client: TestClient, registered_model: str, patch: dict[str, Any], status: int, code: str, field: str
) -> None:
    body = {"kind": "classify", "model": registered_model, "inputs": ["fine"], **patch}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    assert _job_count() == 0
    assert _queued_messages("inference.normal") == []


def test_missing_fields_and_non_json_are_422(client: TestClient) -> None:
    response = client.post("/v1/jobs", json={"kind": "classify"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] in {"model", "inputs"}
    response = client.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_kind_the_model_does_not_serve_is_422(client: TestClient, registered_model: str) -> None:
    from seqserve.shared.db.models import Model

    with session_scope() as session:
        session.scalars(select(Model)).one().task = "tag"
    response = client.post("/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": ["x"]})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "kind_not_supported"


def test_limits_come_from_settings(client: TestClient, registered_model: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from seqserve.shared.config import reset_settings

    monkeypatch.setenv("SEQSERVE_MAX_INPUTS_PER_JOB", "2")
    reset_settings()
    response = client.post("/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": ["a"] * 3})
    assert response.status_code == 422
    assert "at most 2" in response.json()["error"]["message"]


def test_models_list_shows_kinds_versions_and_aliases(client: TestClient, registered_model: str) -> None:
    models = client.get("/v1/models").json()
    assert [m["name"] for m in models] == ["tiny-sst2"]
    model = models[0]
    assert model["task"] == "classify" and model["kinds"] == ["classify", "embed", "similar"]
    assert model["aliases"] == {"production": 1}
    assert model["versions"][0]["version"] == 1
    assert 0.0 <= model["versions"][0]["metrics"]["accuracy"] <= 1.0


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get(f"/v1/jobs/{uuid.uuid4()}")
    metrics = client.get("/metrics").text
    assert 'seqserve_http_request_seconds_count{method="GET",route="/v1/jobs/{job_id}",status="404"}' in metrics


def test_unreachable_broker_answers_503_and_keeps_nothing(
    db: str, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seqserve.shared.config import reset_settings

    monkeypatch.setenv("SEQSERVE_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    reset_settings()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as dead_broker_client:
        response = dead_broker_client.post(
            "/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": ["x"]}
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert _job_count() == 0
