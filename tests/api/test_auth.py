"""Who may call what: every route of the app against the policy table below (a route
without a policy fails), anonymous / malformed / wrong scope / right scope, teams, revoked
and expired keys, auth off, and /metrics behind a key."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from starlette.routing import Mount

from seqserve.services.api.main import create_app
from seqserve.shared.auth.scopes import SCOPES
from seqserve.shared.config import reset_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import ApiKey
from seqserve.shared.db.session import session_scope
from tests.conftest import create_key

OPEN = None
# (method, path) -> the scope it needs; OPEN: no key. Docs pages follow SEQSERVE_DOCS.
POLICY: dict[tuple[str, str], str | None] = {
    ("POST", "/v1/jobs"): "jobs:write",
    ("GET", "/v1/jobs"): "jobs:read",
    ("GET", "/v1/jobs/{job_id}"): "jobs:read",
    ("GET", "/v1/jobs/{job_id}/events"): "jobs:read",
    ("POST", "/v1/jobs/{job_id}/cancel"): "jobs:write",
    ("GET", "/v1/models"): "models:read",
    ("GET", "/v1/models/{name}"): "models:read",
    ("PUT", "/v1/models/{name}/aliases/{alias}"): "models:write",
    ("GET", "/v1/models/{name}/versions/{version}/curve.png"): "models:read",
    ("GET", "/v1/models/{name}/versions/{version}/checkpoint"): "models:write",
    ("GET", "/v1/models/{name}/aliases/{alias}"): "models:read",
    ("GET", "/v1/models/{name}/drift"): "models:read",
    ("POST", "/v1/jobs/{job_id}/feedback"): "jobs:write",
    ("GET", "/v1/jobs/{job_id}/feedback"): "jobs:read",
    ("PUT", "/v1/models/{name}/aliases/{alias}/rollout"): "models:write",
    ("POST", "/v1/models/{name}/aliases/{alias}/promote"): "models:write",
    ("POST", "/v1/models/{name}/aliases/{alias}/rollback"): "models:write",
    ("POST", "/v1/training-runs"): "training:write",
    ("GET", "/v1/training-runs"): "models:read",
    ("GET", "/v1/training-runs/{run_id}"): "models:read",
    ("POST", "/v1/training-runs/{run_id}/cancel"): "training:write",
    ("GET", "/v1/stats"): "admin",
    ("GET", "/v1/queues"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys/{name}/revoke"): "admin",
    ("PATCH", "/v1/keys/{name}/limits"): "admin",
    ("GET", "/v1/audit"): "admin",
    ("POST", "/v1/files"): "jobs:write",
    ("GET", "/v1/files/{file_id}"): "jobs:read",
    ("GET", "/v1/files/{file_id}/content"): "jobs:read",
    ("POST", "/v1/batches"): "jobs:write",
    ("GET", "/v1/batches"): "jobs:read",
    ("GET", "/v1/batches/{batch_id}"): "jobs:read",
    ("POST", "/v1/batches/{batch_id}/cancel"): "jobs:write",
    ("GET", "/v1/batches/{batch_id}/output"): "jobs:read",
    ("GET", "/v1/batches/{batch_id}/errors"): "jobs:read",
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,  # SEQSERVE_METRICS_AUTH=bearer: metrics:read (tested below)
    ("GET", "/console"): OPEN,  # a static page: its data calls carry the key
    ("GET", "/console/static/{name}"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("GET", "/static-offline-docs/{path}"): OPEN,  # Swagger UI's and ReDoc's files
}
PATH_VALUES = {"{job_id}": str(uuid.uuid4()), "{file_id}": str(uuid.uuid4()), "{batch_id}": str(uuid.uuid4()),
               "{run_id}": str(uuid.uuid4()), "{name}": "absent",
               "{alias}": "production", "{version}": "1"}
PROTECTED = sorted((route, scope) for route, scope in POLICY.items() if scope is not None)


def _url(path: str) -> str:
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, value)
    return path


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture()
def anonymous(db: str) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


def _call(client: TestClient, method: str, path: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return client.request(method, _url(path), headers=headers, json={} if method in ("POST", "PUT") else None)


def _routes(routes: list[Any]) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through included routers (the app includes them without
    a prefix of its own: each router carries its prefix)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)
        elif isinstance(route, Mount):  # static files: GET of any path below
            yield ("GET", f"{route.path}/{{path}}")
        else:
            yield from ((method, route.path) for method in route.methods - {"HEAD"})


def test_every_route_has_a_policy(anonymous: TestClient) -> None:
    assert set(_routes(anonymous.app.routes)) == set(POLICY)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("route", "scope"), PROTECTED, ids=[f"{m} {p}" for (m, p), _ in PROTECTED])
def test_a_route_refuses_the_anonymous_and_the_wrong_scope_and_serves_the_right_one(
    anonymous: TestClient, route: tuple[str, str], scope: str
) -> None:
    method, path = route
    for headers in (None, {"Authorization": "Basic dXNlcjpwdw=="}, _bearer("sk_not-a-key"), _bearer("garbage")):
        response = _call(anonymous, method, path, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.json()["error"]["field"] == "Authorization"
    others = tuple(s for s in SCOPES if s not in (scope, "admin"))
    response = _call(anonymous, method, path, _bearer(create_key("t1", others)))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "insufficient_scope" and f"'{scope}'" in response.json()["error"]["message"]
    for holder in ((scope,), ("admin",)):
        response = _call(anonymous, method, path, _bearer(create_key("t1", holder)))
        assert response.status_code not in (401, 403), response.text


def _submit(client: TestClient, model: str, headers: dict[str, str], text: str = "fine", **extra: str):  # type: ignore[no-untyped-def]
    body = {"kind": "classify", "model": model, "inputs": [text]}
    return client.post("/v1/jobs", json=body, headers=headers | extra)


def test_another_teams_job_is_not_found_and_not_listed(anonymous: TestClient, registered_model: str) -> None:
    both = ("jobs:read", "jobs:write")
    mine, theirs = _bearer(create_key("red", both)), _bearer(create_key("blue", both))
    job = _submit(anonymous, registered_model, mine, **{"Idempotency-Key": "k1"}).json()
    url = f"/v1/jobs/{job['id']}"
    assert anonymous.get(url, headers=mine).status_code in (200, 202)
    assert anonymous.get(url, headers=theirs).status_code == 404
    assert anonymous.get(url, headers=theirs | {"Prefer": "wait=0.2"}).json()["error"]["code"] == "job_not_found"
    assert anonymous.post(f"{url}/cancel", headers=theirs).status_code == 404
    assert anonymous.get("/v1/jobs", headers=theirs).json()["items"] == []
    assert [j["id"] for j in anonymous.get("/v1/jobs", headers=mine).json()["items"]] == [job["id"]]
    # Idempotency keys are per team: blue's "k1" with another body is a new job, not a 409.
    other = _submit(anonymous, registered_model, theirs, "other text", **{"Idempotency-Key": "k1"})
    assert other.status_code == 202 and other.json()["id"] != job["id"]
    assert anonymous.get(url, headers=mine).json()["status"] == "queued"  # not cancelled by blue


def test_keys_over_http_show_a_secret_once_and_revoke_at_once(anonymous: TestClient) -> None:
    admin = _bearer(create_key())
    created = anonymous.post("/v1/keys", headers=admin, json={"name": "ci", "team": "red", "scopes": ["jobs:read"]})
    assert created.status_code == 201 and created.json()["secret"].startswith("sk_")
    secret = created.json()["secret"]
    assert anonymous.post("/v1/keys", headers=admin, json={"name": "ci", "team": "x", "scopes": ["admin"]}).status_code == 409
    assert anonymous.post("/v1/keys", headers=admin, json={"name": "x", "team": "x", "scopes": ["root"]}).status_code == 422
    assert anonymous.get("/v1/jobs", headers=_bearer(secret)).status_code == 200
    listed = anonymous.get("/v1/keys", headers=admin)
    assert secret not in listed.text and secret[:11] in listed.text and "secret" not in listed.text
    assert anonymous.post("/v1/keys/ci/revoke", headers=admin).json()["revoked_at"] is not None
    revoked = anonymous.get("/v1/jobs", headers=_bearer(secret))  # cached principal: cleared by the revoke
    assert revoked.status_code == 401 and revoked.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.post("/v1/keys/nobody/revoke", headers=admin).status_code == 404


def test_an_expired_key_is_refused(anonymous: TestClient) -> None:
    secret = create_key("red", ("jobs:read",), name="soon", expires_days=1)
    assert anonymous.get("/v1/jobs", headers=_bearer(secret)).status_code == 200
    with session_scope() as session:
        session.execute(update(ApiKey).where(ApiKey.name == "soon").values(expires_at=utcnow() - timedelta(seconds=1)))
    anonymous.app.state.caches.principals.clear()  # type: ignore[attr-defined]
    response = anonymous.get("/v1/jobs", headers=_bearer(secret))
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_last_use_is_written_once_per_window_not_per_request(anonymous: TestClient) -> None:
    secret = create_key("red", ("jobs:read",), name="used")
    for _ in range(3):
        anonymous.get("/v1/jobs", headers=_bearer(secret))
        anonymous.app.state.caches.principals.clear()  # type: ignore[attr-defined]
    with session_scope() as session:
        key = session.query(ApiKey).filter_by(name="used").one()
        first_use = key.last_used_at
    assert first_use is not None and utcnow() - first_use < timedelta(seconds=30)
    anonymous.get("/v1/jobs", headers=_bearer(secret))
    with session_scope() as session:
        assert session.query(ApiKey).filter_by(name="used").one().last_used_at == first_use


def test_auth_off_serves_anyone_as_admin_and_warns(db: str, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SEQSERVE_AUTH", "off")
    reset_settings()
    with caplog.at_level(logging.WARNING), TestClient(create_app()) as client:
        assert client.get("/v1/jobs").status_code == 200
        assert client.get("/v1/keys").status_code == 200
    assert any(r.levelno == logging.WARNING and "SEQSERVE_AUTH=off" in r.getMessage() for r in caplog.records)


def test_metrics_behind_a_key_and_docs_off(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_METRICS_AUTH", "bearer")
    monkeypatch.setenv("SEQSERVE_DOCS", "false")
    reset_settings()
    with TestClient(create_app()) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=_bearer(create_key("ops", ("jobs:read",)))).status_code == 403
        assert client.get("/metrics", headers=_bearer(create_key("ops", ("metrics:read",)))).status_code == 200
        assert client.get("/openapi.json").status_code == 404 and client.get("/docs").status_code == 404
        assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 404
        assert client.get("/healthz").status_code == 200
