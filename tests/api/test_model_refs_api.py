"""Model references: what `model_not_found` suggests, and the jobs filter taking the
references submission takes (`name`, `name@alias`, `name:version`)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import register_tiny


def _submit(client: TestClient, ref: str) -> str:
    response = client.post("/v1/jobs", json={"kind": "classify", "model": ref, "inputs": ["fine"]})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _listed(client: TestClient, model: str) -> set[str]:
    response = client.get("/v1/jobs", params={"model": model})
    assert response.status_code == 200, response.text
    return {job["id"] for job in response.json()["items"]}


@pytest.mark.parametrize("ref", ["nope", "tiny-sst2:7", "tiny-sst2@staging"])
def test_model_not_found_lists_what_serves_the_kind_and_how_to_train_one(
    client: TestClient, registered_model: str, ref: str
) -> None:
    response = client.post("/v1/jobs", json={"kind": "classify", "model": ref, "inputs": ["x"]})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["field"] == "model"
    assert "registered models serving classify: tiny-sst2 (@production = v1)" in error["message"]
    assert "seqserve train --task classify --preset quick" in error["message"]


def test_model_not_found_for_a_kind_nothing_serves_says_none_and_names_its_task(
    client: TestClient, registered_model: str
) -> None:
    response = client.post("/v1/jobs", json={"kind": "translate", "model": "multi30k-en-de", "inputs": ["a dog"]})
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "model 'multi30k-en-de' is not registered" in message
    assert "registered models serving translate: none" in message and "tiny-sst2" not in message
    assert "seqserve train --task translate --preset quick" in message


def test_reading_an_unknown_model_lists_the_registered_ones(client: TestClient, registered_model: str) -> None:
    response = client.get("/v1/models/nope")
    assert response.status_code == 404
    assert "registered models: tiny-sst2 (@production = v1)" in response.json()["error"]["message"]


def test_jobs_filter_takes_name_alias_and_version(client: TestClient, registered_model: str) -> None:
    register_tiny()  # v2; production stays or moves by the gate, so pin both aliases here
    assert client.put("/v1/models/tiny-sst2/aliases/production", json={"version": 1}).status_code == 200
    assert client.put("/v1/models/tiny-sst2/aliases/staging", json={"version": 2}).status_code == 200
    on_v1 = {_submit(client, "tiny-sst2"), _submit(client, "tiny-sst2:1")}
    on_v2 = {_submit(client, "tiny-sst2@staging"), _submit(client, "tiny-sst2:2")}

    assert _listed(client, "tiny-sst2") == on_v1 | on_v2
    assert _listed(client, "tiny-sst2:1") == on_v1
    assert _listed(client, "tiny-sst2:2") == on_v2
    assert _listed(client, "tiny-sst2@staging") == on_v2
    assert _listed(client, "tiny-sst2@production") == on_v1
    assert _listed(client, "tiny-sst2:3") == set()
    assert _listed(client, "other-model") == set()


@pytest.mark.parametrize(("model", "status", "code"), [
    ("bad ref!", 422, "invalid_model_ref"),
    ("tiny-sst2:0", 422, "invalid_model_ref"),
    ("tiny-sst2@", 422, "invalid_model_ref"),
    ("tiny-sst2@staging", 404, "model_not_found"),
])
def test_jobs_filter_refuses_a_malformed_or_unknown_reference(
    client: TestClient, registered_model: str, model: str, status: int, code: str
) -> None:
    response = client.get("/v1/jobs", params={"model": model})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["field"] == "model"
