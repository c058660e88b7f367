"""A version's files over HTTP (training curve, checkpoint) and no server path in the
registry's answers, on a really trained and registered classifier."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from seqserve.shared.db.session import session_scope
from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version
from tests.conftest import create_key

BASE = "/v1/models/curved-sst2/versions/1"


@pytest.fixture()
def curved_model(db: str, tiny_classifier) -> str:  # type: ignore[no-untyped-def]
    """The session's tiny classifier registered as the trainer registers a run: with its curve."""
    outcome = tiny_classifier
    with session_scope() as session:
        version = register_version(session, NewVersion(
            model_name="curved-sst2", task="classify", checkpoint_uri=str(outcome.checkpoint_path.resolve()),
            sha256=outcome.sha256, size_bytes=outcome.size_bytes, metrics=outcome.metrics,
            primary_metric=outcome.primary_metric, dataset_fingerprint=outcome.data_fingerprint,
            architecture=outcome.model_config, train_config=outcome.config,
            artifacts={"training_curve": str(outcome.curve_path.resolve())},
        ))
        promote_if_better(session, version, 0.0)
    return "curved-sst2"


def _client(*scopes: str) -> TestClient:
    from seqserve.services.api.main import create_app

    return TestClient(create_app(), headers={"Authorization": f"Bearer {create_key('t1', scopes)}"})


@pytest.fixture()
def reader(db: str) -> Iterator[TestClient]:
    with _client("models:read") as client:
        yield client


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_registry_answers_carry_urls_and_no_server_path(reader: TestClient, curved_model: str) -> None:
    model = reader.get(f"/v1/models/{curved_model}").json()
    listed = reader.get("/v1/models").json()
    assert model["versions"][0]["artifacts"] == {"training_curve": f"{BASE}/curve.png", "checkpoint": f"{BASE}/checkpoint"}
    paths = [s for s in _strings([model, listed]) if s.startswith("/") and not s.startswith("/v1/")]
    assert paths == []


def test_curve_is_a_png_for_models_read(reader: TestClient, curved_model: str, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    response = reader.get(f"{BASE}/curve.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG") and response.content == tiny_classifier.curve_path.read_bytes()


def test_checkpoint_needs_models_write_and_streams_with_its_sha256(
    reader: TestClient, curved_model: str, tiny_classifier  # type: ignore[no-untyped-def]
) -> None:
    refused = reader.get(f"{BASE}/checkpoint")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    with _client("models:write") as writer:
        response = writer.get(f"{BASE}/checkpoint")
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert response.headers["X-Checkpoint-SHA256"] == tiny_classifier.sha256
    assert hashlib.sha256(response.content).hexdigest() == tiny_classifier.sha256
    assert len(response.content) == tiny_classifier.size_bytes


@pytest.mark.parametrize(("url", "code", "field"), [
    ("/v1/models/absent/versions/1/curve.png", "model_not_found", "name"),
    ("/v1/models/tiny-sst2/versions/9/curve.png", "model_not_found", "version"),
    ("/v1/models/tiny-sst2/versions/1/curve.png", "artifact_not_found", None),  # registered without a curve
    ("/v1/models/tiny-sst2/versions/0/curve.png", "invalid_request", "version"),
])
def test_missing_artifacts_are_json_404s(reader: TestClient, registered_model: str, url: str, code: str,
                                         field: str | None) -> None:
    response = reader.get(url)
    assert response.status_code == (422 if code == "invalid_request" else 404), response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code and response.json()["error"].get("field") == field
