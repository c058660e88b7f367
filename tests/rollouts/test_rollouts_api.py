"""The rollout routes in-process: every wrong input is a 4xx JSON error naming its field;
scopes are checked; the OpenAPI document lists every status."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from seqserve.shared.db.session import session_scope
from seqserve.shared.registry.service import NewVersion, register_version
from tests.conftest import create_key, register_tiny

URL = "/v1/models/tiny-sst2/aliases/production"


def _error(response: Any, status: int, code: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert error["field"] == field


@pytest.fixture()
def model(client: TestClient, tiny_classifier) -> str:  # type: ignore[no-untyped-def]
    register_tiny(tiny_classifier)  # v1, production
    with session_scope() as session:  # v2: registered, not promoted
        o = tiny_classifier
        register_version(session, NewVersion(
            model_name="tiny-sst2", task="classify", checkpoint_uri=str(o.checkpoint_path), sha256=o.sha256,
            size_bytes=o.size_bytes, metrics=o.metrics, primary_metric=o.primary_metric,
            dataset_fingerprint=o.data_fingerprint))
    return "tiny-sst2"


def test_unknown_model_alias_and_versions_are_4xx_naming_the_field(client: TestClient, model: str) -> None:
    _error(client.get("/v1/models/nope/aliases/production"), 404, "model_not_found", "name")
    _error(client.get("/v1/models/tiny-sst2/aliases/staging"), 404, "alias_not_found", "alias")
    _error(client.put(f"{URL}/rollout", json={"shadow": {"version": 9, "rate": 0.5}}), 422, "version_not_found",
           "shadow.version")
    _error(client.put(f"{URL}/rollout", json={"canary": {"1": 50, "7": 50}}), 422, "version_not_found", "canary.7")
    _error(client.put(f"{URL}/rollout", json={"canary": {"1": 0}}), 422, "canary_without_weight", "canary")
    current = client.get(URL).json()["version"]
    _error(client.put(f"{URL}/rollout", json={"shadow": {"version": current, "rate": 0.5}}), 422,
           "shadow_is_current", "shadow.version")
    for body in ({"shadow": {"version": 2, "rate": 0}}, {"shadow": {"version": 2, "rate": 1.5}},
                 {"canary": {"1": 1001}}, {"canary": {"x": 1}}, {"policy": {"min_agreement": 2}},
                 {"policy": {"nope": 1}}, {"shadow": {"version": "2", "rate": 0.5}}):
        response = client.put(f"{URL}/rollout", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"], body


def test_promote_and_rollback_refuse_what_they_cannot_do(client: TestClient, model: str) -> None:
    current = client.get(URL).json()["version"]
    _error(client.post(f"{URL}/promote", json={}), 422, "no_candidate", "version")
    _error(client.post(f"{URL}/promote", json={"version": current}), 422, "already_serving", "version")
    _error(client.post(f"{URL}/promote", json={"version": 99}), 422, "version_not_found", "version")
    _error(client.post(f"{URL}/rollback", json={}), 409, "nothing_to_roll_back", "alias")


def test_rollout_changes_need_models_write_and_reads_models_read(client: TestClient, model: str) -> None:
    reader = {"Authorization": f"Bearer {create_key('red', ('models:read',))}"}
    assert client.get(URL, headers=reader).status_code == 200
    for method, path, body in (("put", "/rollout", {}), ("post", "/promote", {}), ("post", "/rollback", {})):
        response = client.request(method, f"{URL}{path}", json=body, headers=reader)
        _error(response, 403, "insufficient_scope", None)
    assert client.get(URL, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_rollout_is_audited_and_read_back(client: TestClient, model: str) -> None:
    body = {"shadow": {"version": 2, "rate": 0.25}, "canary": {"1": 90, "2": 10},
            "policy": {"min_shadow_inputs": 50, "min_agreement": 0.9}, "reason": "try v2"}
    state = client.put(f"{URL}/rollout", json=body).json()
    assert state["shadow"]["version"] == 2 and state["shadow"]["rate"] == 0.25 and state["shadow"]["inputs"] == 0
    assert [(arm["version"], arm["weight"]) for arm in state["canary"]] == [(1, 90), (2, 10)]
    assert state["policy"]["min_agreement"] == 0.9
    event = client.get("/v1/audit", params={"action": "alias.rollout"}).json()["items"][0]
    assert event["target"] == "tiny-sst2@production" and event["detail"]["reason"] == "try v2"
    assert event["detail"]["to"]["canary"] == {"1": 90, "2": 10}
    # The previous state (no shadow) is what rollback restores.
    restored = client.post(f"{URL}/rollback", json={"reason": "undo"}).json()
    assert restored["shadow"] is None and restored["canary"] == []


def test_openapi_lists_every_status_of_the_rollout_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {("get", "/v1/models/{name}/aliases/{alias}"): {"401", "403", "404", "422"},
                ("put", "/v1/models/{name}/aliases/{alias}/rollout"): {"401", "403", "404", "422"},
                ("post", "/v1/models/{name}/aliases/{alias}/promote"): {"401", "403", "404", "409", "422"},
                ("post", "/v1/models/{name}/aliases/{alias}/rollback"): {"401", "403", "404", "409", "422"}}
    for (method, path), statuses in expected.items():
        assert statuses <= set(paths[path][method]["responses"]), (method, path)


def test_a_promotion_left_pending_by_a_dead_api_process_is_abandoned_by_the_sweep(
        client: TestClient, model: str) -> None:
    from datetime import timedelta

    from seqserve.services.worker import maintenance
    from seqserve.shared.config import get_settings
    from seqserve.shared.db.base import utcnow
    from seqserve.shared.queueing import make_celery
    from seqserve.shared.rollouts import promotion
    from seqserve.shared.rollouts.schemas import PromoteRequest
    from seqserve.shared.rollouts.tables import AliasRollout

    # Phase one of a promotion committed; the API process died before phase two moved the alias.
    promotion._decide("tiny-sst2", "production", PromoteRequest(version=2, force=True), "admin")
    assert client.get(URL).json()["pending_version"] == 2
    timeout = get_settings().rollout_warmup_timeout_seconds
    with session_scope() as session:  # within the timeout and margin: a live API may still be waiting
        assert promotion.abandon_stale(session, utcnow() + timedelta(seconds=timeout), timeout) == []
    with session_scope() as session:
        row = session.scalars(select(AliasRollout)).one()
        row.pending_since = utcnow() - timedelta(seconds=timeout) - promotion.ABANDON_MARGIN - timedelta(seconds=1)
    settings = get_settings()
    maintenance.sweep_jobs(make_celery(settings), None, settings)  # the beat task's body
    state = client.get(URL).json()
    assert state["pending_version"] is None and state["version"] == 1  # the alias never moved
    event = client.get("/v1/audit", params={"action": "alias.abandoned"}).json()["items"][0]
    assert event["target"] == "tiny-sst2@production" and event["detail"]["pending"] == 2
    promoted = client.post(f"{URL}/promote", json={"version": 2, "force": True, "reason": "again"})
    assert promoted.status_code == 200 and promoted.json()["state"]["version"] == 2  # promoting again works
