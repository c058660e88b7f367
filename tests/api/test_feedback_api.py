"""Feedback on finished jobs over the ASGI app on the real Postgres: validated against the
job's kind and answer, team-scoped, replaced per input, read back."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from seqserve.shared.db.models import JobStatus
from tests.conftest import claim_group_of, create_key, finish

ANSWER = {"label": "positive", "probabilities": {"negative": 0.3, "positive": 0.7}}


def _finished(client: TestClient, model: str, inputs: list[str], status: JobStatus = JobStatus.succeeded,
              result: list | None = None) -> str:
    job_id = client.post("/v1/jobs", json={"kind": "classify", "model": model, "inputs": inputs}).json()["id"]
    (claimed,) = claim_group_of(uuid.UUID(job_id))
    assert finish(claimed, status, result if result is not None else [ANSWER] * len(inputs))
    return job_id


def test_feedback_is_stored_replaced_and_read_back(client: TestClient, registered_model: str) -> None:
    job_id = _finished(client, registered_model, ["a dull film", "a fine film"])
    posted = client.post(f"/v1/jobs/{job_id}/feedback", json={"items": [{"index": 0, "label": "negative"}]})
    assert posted.status_code == 201, posted.text
    assert posted.json()[0] | {"created_at": None} == {
        "job_id": job_id, "index": 0, "input": "a dull film", "correction": {"label": "negative"}, "created_at": None}
    again = client.post(f"/v1/jobs/{job_id}/feedback",
                        json={"items": [{"index": 0, "label": "positive"}, {"index": 1, "label": "positive"}]})
    assert again.status_code == 201
    read = client.get(f"/v1/jobs/{job_id}/feedback").json()
    assert [(row["index"], row["correction"]["label"]) for row in read] == [(0, "positive"), (1, "positive")]


@pytest.mark.parametrize(("items", "field"), [
    ([{"index": 2, "label": "negative"}], "items[0].index"),
    ([{"index": 0, "label": "neutral"}], "items[0].label"),
    ([{"index": 0, "tags": ["NOUN"]}], "items[0].label"),
    ([{"index": 0, "label": "negative"}, {"index": 0, "label": "positive"}], "items"),
    ([{"index": -1, "label": "negative"}], "items[0].index"),
    ([{"index": 0, "label": "negative", "extra": 1}], "items[0].extra"),
    ([], "items"),
])
def test_corrections_that_do_not_fit_are_422_naming_the_field(client: TestClient, registered_model: str,
                                                               items: list, field: str) -> None:
    job_id = _finished(client, registered_model, ["a dull film", "a fine film"])
    response = client.post(f"/v1/jobs/{job_id}/feedback", json={"items": items})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert client.get(f"/v1/jobs/{job_id}/feedback").json() == []


def test_feedback_needs_a_succeeded_job_of_the_team(client: TestClient, registered_model: str) -> None:
    body = {"items": [{"index": 0, "label": "negative"}]}
    queued = client.post("/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": ["x"]}).json()
    assert client.post(f"/v1/jobs/{queued['id']}/feedback", json=body).json()["error"]["code"] == "job_not_succeeded"
    client.post(f"/v1/jobs/{queued['id']}/cancel")  # out of the way of the claims below
    failed = _finished(client, registered_model, ["x"], JobStatus.failed, result=[])
    assert client.post(f"/v1/jobs/{failed}/feedback", json=body).status_code == 409
    done = _finished(client, registered_model, ["x"])
    other = {"Authorization": f"Bearer {create_key(team='other', scopes=('jobs:write', 'jobs:read'))}"}
    assert client.post(f"/v1/jobs/{done}/feedback", json=body, headers=other).status_code == 404
    assert client.get(f"/v1/jobs/{done}/feedback", headers=other).status_code == 404
    reader = {"Authorization": f"Bearer {create_key(scopes=('jobs:read',))}"}
    assert client.post(f"/v1/jobs/{done}/feedback", json=body, headers=reader).status_code == 403
    assert client.post(f"/v1/jobs/{uuid.uuid4()}/feedback", json=body).status_code == 404


def test_the_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/v1/jobs/{job_id}/feedback"]["post"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(post["responses"])
    assert "get" in paths["/v1/jobs/{job_id}/feedback"]
    submit = paths["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert submit.endswith("JobCreate")
