"""Every bad input the hardening issue lists answers a 4xx JSON error naming its field, and
nothing is stored (the ASGI app in-process, on the real Postgres and Redis)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from seqserve.shared.config import reset_settings
from tests.api.conftest import job_count


def _assert_error(response: Any, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["field"] == field and error["message"], error
    return error


def _post_raw(client: TestClient, payload: str, headers: dict[str, str] | None = None) -> Any:
    # Raw JSON text: "\ud800" must reach the server as an escape, not as bytes Python can not encode.
    return client.post("/v1/jobs", content=payload.encode(), headers={"Content-Type": "application/json", **(headers or {})})


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"kind":"classify","model":"tiny-sst2","inputs":["good\\u0000film"]}', "inputs[0]"),
        ('{"kind":"classify","model":"tiny-sst2","inputs":["\\ud800"]}', "inputs[0]"),
        ('{"kind":"classify","model":"tiny-\\ud800","inputs":["x"]}', "model"),
        ('{"kind":"classify","model":"tiny\\u0000sst2","inputs":["x"]}', "model"),
        ('{"kind":"cl\\ud800","model":"tiny-sst2","inputs":["x"]}', "kind"),
        ('{"kind":"classify","model":"tiny-sst2","inputs":["x"],"params":{"\\ud800":1}}', "params.*"),
        ('{"kind":"classify","model":"tiny-sst2","inputs":["x"],"webhook_url":"http://example.com/\\u0000"}', "webhook_url"),
        ('{"kind":"classify","model":"tiny-sst2","inputs":["x"],"webhook_url":"http://example.com/\\ud800"}', "webhook_url"),
        ('{"kind":"","model":"tiny-sst2","inputs":["x"]}', "kind"),
        ('{"kind":"classify","model":"","inputs":["x"]}', "model"),
        ('{"kind":"classify","model":"tiny-sst2","inputs":[""]}', "inputs[0]"),
    ],
)
def test_unstorable_or_empty_text_is_422_naming_the_field(client: TestClient, registered_model: str,
                                                          payload: str, field: str) -> None:
    response = _post_raw(client, payload)
    # A surrogate dict key comes back as pydantic writes it in `loc`: match the prefix only.
    reported = response.json()["error"]["field"]
    error = _assert_error(response, 422, reported if field.endswith("*") and reported.startswith(field[:-1]) else field)
    assert error["code"] == "invalid_request"
    assert job_count() == 0


def test_empty_idempotency_key_is_422(client: TestClient, registered_model: str) -> None:
    body = '{"kind":"classify","model":"tiny-sst2","inputs":["x"]}'
    _assert_error(_post_raw(client, body, {"Idempotency-Key": ""}), 422, "idempotency-key")
    # h11 refuses a raw NUL in a header line, so it can not arrive; a surrogate can not be sent as latin-1 either.
    assert job_count() == 0


@pytest.mark.parametrize("path", ["/v1/models/%00", "/v1/models/a%00b/aliases/production", "/v1/jobs?model=%00",
                                  "/v1/jobs?kind=%00", "/v1/jobs?cursor=%00"])
def test_nul_in_paths_and_filters_is_422(client: TestClient, path: str) -> None:
    method = "PUT" if "aliases" in path else "GET"
    response = client.request(method, path, json={"version": 1})
    error = _assert_error(response, 422, response.json()["error"]["field"])
    assert error["field"] in {"name", "model", "kind", "cursor"}
    assert "NUL" in error["message"]


@pytest.mark.parametrize("prefer", ["wait=nan", "wait=inf", "wait=-1", "wait=1e400", "wait=", "wait", "wait=10s",
                                    "=5", "wait=NaN, respond-async", "wa it=1"])
def test_bad_prefer_is_refused_before_anything_is_stored(client: TestClient, registered_model: str, prefer: str) -> None:
    body = '{"kind":"classify","model":"tiny-sst2","inputs":["x"]}'
    error = _assert_error(_post_raw(client, body, {"Prefer": prefer}), 422, "Prefer")
    assert error["code"] == "invalid_prefer"
    assert job_count() == 0


def test_well_formed_unknown_preferences_are_ignored(client: TestClient, registered_model: str) -> None:
    body = '{"kind":"classify","model":"tiny-sst2","inputs":["x"]}'
    response = _post_raw(client, body, {"Prefer": "respond-async, wait=0"})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("version", [2**31, 2**63, 10**30, 0, True, "1", 1.5])
def test_alias_version_out_of_bounds_or_not_an_integer_is_422(client: TestClient, registered_model: str,
                                                              version: Any) -> None:
    response = client.put(f"/v1/models/{registered_model}/aliases/production", json={"version": version})
    _assert_error(response, 422, "version")


@pytest.mark.parametrize("max_tokens", ["5", True, 5.5, 2**40])
def test_params_are_strict(client: TestClient, db: str, max_tokens: Any) -> None:
    body = {"kind": "generate", "model": "any", "inputs": ["x"], "params": {"max_tokens": max_tokens}}
    error = _assert_error(client.post("/v1/jobs", json=body), 422, "params.max_tokens")
    assert error["code"] == "invalid_params"


@pytest.mark.parametrize("query", ["created_before=0.5", "created_after=1700000000", "created_before=2026-01-01T00:00:00",
                                   "created_before=yesterday", "limit=0", "limit=501", "limit=99999999999999999999",
                                   "cursor=bm90LWEtY3Vyc29y", "status=nope"])
def test_list_filters_are_strict(client: TestClient, query: str) -> None:
    response = client.get(f"/v1/jobs?{query}")
    _assert_error(response, 422, query.split("=", 1)[0])


def test_iso_datetimes_with_a_timezone_filter(client: TestClient) -> None:
    window = {"created_before": "2026-01-01T00:00:00Z", "created_after": "2020-01-01T00:00:00+02:00"}
    response = client.get("/v1/jobs", params=window)
    assert response.status_code == 200 and response.json()["items"] == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:5432/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:6379/",
                                 "http://2130706433/", "http://0x7f.1/", "http://017700000001/", "http://127.1/",
                                 "http://[::ffff:127.0.0.1]/", "http://metadata.google.internal/", "http://localhost:8000/",
                                 "http://10.0.0.1/", "http://100.64.0.1/", "http://[fe80::1]/", "http://224.0.0.1/",
                                 "http://0.0.0.0/", "http://user:pw@example.com/", "ftp://example.com/"])
def test_internal_webhook_urls_are_refused_at_submission(client: TestClient, registered_model: str, url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_WEBHOOK_SECRET", "s3cret")
    reset_settings()
    body = {"kind": "classify", "model": registered_model, "inputs": ["x"], "webhook_url": url}
    _assert_error(client.post("/v1/jobs", json=body), 422, "webhook_url")
    assert job_count() == 0


def test_openapi_lists_the_error_statuses(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {("/v1/jobs", "post"): {"200", "202", "404", "409", "422", "503"},
                ("/v1/jobs/{job_id}/cancel", "post"): {"200", "404", "409", "422", "503"},
                ("/v1/models/{name}", "get"): {"200", "404", "422", "503"}}
    for (path, method), statuses in expected.items():
        declared = paths[path][method]["responses"]
        assert statuses <= set(declared), (path, declared.keys())
        assert declared["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
