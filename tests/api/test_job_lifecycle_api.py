"""Idempotency, listing, cancellation, backpressure, Prefer: wait and the registry routes,
over the ASGI app on the real Postgres and Redis (no worker: jobs stay queued here)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from seqserve.shared.config import reset_settings
from seqserve.shared.db.models import JobStatus
from seqserve.shared.db.session import session_scope
from tests.conftest import claim_group_of, create_key, finish


@pytest.fixture()
def client(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _submit(client: TestClient, model: str, text: str = "fine", **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/jobs", json={"kind": "classify", "model": model, "inputs": [text]}, headers=headers)


def test_idempotency_key_replays_and_conflicts(client: TestClient, registered_model: str) -> None:
    first = _submit(client, registered_model, **{"Idempotency-Key": "k-1"})
    again = _submit(client, registered_model, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    conflict = _submit(client, registered_model, "another text", **{"Idempotency-Key": "k-1"})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    other = _submit(client, registered_model, **{"Idempotency-Key": "k-2"})
    assert other.json()["id"] != first.json()["id"]
    assert len(client.get("/v1/jobs").json()["items"]) == 2


def test_list_filters_and_paginates(client: TestClient, registered_model: str) -> None:
    ids = [_submit(client, registered_model, f"text {i}").json()["id"] for i in range(5)]
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, each exactly once
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert [job["id"] for job in cancelled] == [ids[0]]
    assert client.get("/v1/jobs", params={"kind": "tag"}).json()["items"] == []
    assert len(client.get("/v1/jobs", params={"model": registered_model}).json()["items"]) == 5
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get("/v1/jobs", params={"created_after": future}).json()["items"] == []
    assert client.get("/v1/jobs", params={"status": "bogus"}).status_code == 422
    assert client.get("/v1/jobs", params={"cursor": "%%%"}).json()["error"]["code"] == "invalid_cursor"


def test_cancel_queued_and_finished(client: TestClient, registered_model: str) -> None:
    job_id = _submit(client, registered_model).json()["id"]
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    assert client.post(f"/v1/jobs/{uuid.uuid4()}/cancel").status_code == 404


def test_cancel_running_discards_the_result(client: TestClient, registered_model: str) -> None:
    job_id = uuid.UUID(_submit(client, registered_model).json()["id"])
    (claimed,) = claim_group_of(job_id)  # a worker takes the job ...
    assert claimed.claim.job_id == job_id
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert not finish(claimed, JobStatus.succeeded, result=[{"label": "x"}])  # ... and its late result is refused
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["result"] is None


def test_backpressure_answers_503_past_the_queue_depth(
    client: TestClient, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_MAX_QUEUE_DEPTH", "2")
    reset_settings()
    caches = client.app.state.caches  # type: ignore[attr-defined]
    statuses = []
    for i in range(3):
        caches.queue_depths.clear()  # the depth is cached for 0.5 s per process
        statuses.append(_submit(client, registered_model, f"t{i}").status_code)
    assert statuses == [202, 202, 503]
    caches.queue_depths.clear()
    response = _submit(client, registered_model, "t3")
    assert response.json()["error"]["code"] == "queue_full" and response.headers["Retry-After"] == "5"
    assert len(client.get("/v1/jobs").json()["items"]) == 2  # nothing stored for refused ones


def test_prefer_wait_returns_202_when_the_job_is_still_queued(client: TestClient, registered_model: str) -> None:
    started = time.monotonic()
    response = _submit(client, registered_model, **{"Prefer": "wait=1"})
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert time.monotonic() - started >= 1.0
    assert response.headers["Preference-Applied"] == "wait=1"
    bad = _submit(client, registered_model, **{"Prefer": "wait=soon"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Prefer"


def test_webhooks_need_a_secret_and_a_url(client: TestClient, registered_model: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    body = {"kind": "classify", "model": registered_model, "inputs": ["x"], "webhook_url": "http://127.0.0.1:9/hook"}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422 and response.json()["error"]["code"] == "webhooks_disabled"
    monkeypatch.setenv("SEQSERVE_WEBHOOK_SECRET", "s3cret")
    reset_settings()
    refused = client.post("/v1/jobs", json=body)  # loopback, and nobody allowlisted it
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "webhook_url_refused"
    monkeypatch.setenv("SEQSERVE_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8")
    reset_settings()
    assert client.post("/v1/jobs", json=body).status_code == 202
    bad = client.post("/v1/jobs", json=body | {"webhook_url": "ftp://example/x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "webhook_url"


def test_model_detail_and_alias_moves(client: TestClient, registered_model: str, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    from seqserve.shared.registry.service import NewVersion, register_version

    with session_scope() as session:
        register_version(session, NewVersion(
            model_name=registered_model, task="classify", checkpoint_uri=str(tiny_classifier.checkpoint_path),
            sha256=tiny_classifier.sha256, size_bytes=1, metrics={"accuracy": 0.1}, primary_metric="accuracy",
            dataset_fingerprint="f",
        ))
    detail = client.get(f"/v1/models/{registered_model}").json()
    assert [v["version"] for v in detail["versions"]] == [1, 2] and detail["aliases"] == {"production": 1}
    moved = client.put(f"/v1/models/{registered_model}/aliases/production", json={"version": 2})
    assert moved.json() == {"model": registered_model, "alias": "production", "version": 2}
    assert _submit(client, registered_model).json()["model_version"] == 2  # effective at once
    assert client.put(f"/v1/models/{registered_model}/aliases/staging", json={"version": 1}).status_code == 200
    assert _submit(client, f"{registered_model}@staging").json()["model_version"] == 1
    missing = client.put(f"/v1/models/{registered_model}/aliases/production", json={"version": 9})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "version"
    assert client.put("/v1/models/nope/aliases/production", json={"version": 1}).status_code == 404
    assert client.put(f"/v1/models/{registered_model}/aliases/bad alias", json={"version": 1}).status_code == 422
    assert client.get("/v1/models/nope").json()["error"]["code"] == "model_not_found"


def test_readyz_is_200_without_a_consumer_and_the_queue_report_says_none(client: TestClient) -> None:
    response = client.get("/readyz")  # no worker, no beat: jobs are still stored and queued
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"] and "consumers" not in checks
    report = client.get("/v1/queues").json()
    assert report["ok"] is False
    normal = report["queues"]["inference.normal"]
    assert normal["ok"] is False and normal["consumers"] == [] and normal["canary"]["ok"] is False


def test_the_queue_report_lists_the_workers_that_vouched_recently(client: TestClient) -> None:
    import time

    import redis

    from seqserve.shared import consumers
    from tests.conftest import REDIS_URL

    broker = redis.Redis.from_url(REDIS_URL)
    now = time.time()
    consumers.record(broker, "old@host", ["inference.normal"], now - 3600, window=30)
    consumers.record(broker, "w1@host", ["inference.high", "inference.normal", "inference.low"], now, window=30)
    report = client.get("/v1/queues").json()
    assert report["ok"] is True
    assert [c["worker"] for c in report["queues"]["inference.normal"]["consumers"]] == ["w1@host"]
    consumers.withdraw(broker, "w1@host", ["inference.low"])
    low = client.get("/v1/queues").json()["queues"]["inference.low"]
    assert low["ok"] is False and low["consumers"] == []
    metrics = client.get("/metrics").text
    assert 'seqserve_queue_consumers{queue="inference.normal"} 1.0' in metrics
    assert 'seqserve_queue_consumers{queue="inference.low"} 0.0' in metrics


@pytest.fixture()
def models_of_every_task(db: str) -> None:
    """Registry rows for each task; the API validates against them without loading weights."""
    from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version

    for name, task in (("tagger", "tag"), ("lm", "generate"), ("mt", "translate"), ("clf", "classify")):
        with session_scope() as session:
            version = register_version(session, NewVersion(
                model_name=name, task=task, checkpoint_uri="/absent.pt", sha256="0" * 64, size_bytes=1,
                metrics={"m": 1.0}, primary_metric="m", dataset_fingerprint="f",
            ))
            promote_if_better(session, version, 0.0)


@pytest.mark.parametrize(
    ("kind", "model", "params", "field"),
    [
        ("generate", "lm", {"temperature": -1}, "params.temperature"),
        ("generate", "lm", {"top_p": 0}, "params.top_p"),
        ("generate", "lm", {"max_tokens": 0}, "params.max_tokens"),
        ("generate", "lm", {"max_tokens": "many"}, "params.max_tokens"),
        ("generate", "lm", {"top_k": -3}, "params.top_k"),
        ("generate", "lm", {"seed": -1}, "params.seed"),
        ("generate", "lm", {"beam_size": 2}, "params.beam_size"),
        ("score", "lm", {"temperature": 1.0}, "params.temperature"),
        ("translate", "mt", {"beam_size": 0}, "params.beam_size"),
        ("translate", "mt", {"beam_size": 99}, "params.beam_size"),
        ("translate", "mt", {"length_penalty": 5}, "params.length_penalty"),
        ("tag", "tagger", {"top_k": 1}, "params.top_k"),
        ("classify", "clf", {"temperature": 1}, "params.temperature"),
    ],
)
def test_bad_params_per_kind_name_the_field(
    client: TestClient, models_of_every_task: None, kind: str, model: str, params: dict, field: str
) -> None:
    response = client.post("/v1/jobs", json={"kind": kind, "model": model, "inputs": ["a text"], "params": params})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == response.json()["error"] | {"code": "invalid_params", "field": field}


@pytest.mark.parametrize(
    ("kind", "model", "params"),
    [("generate", "lm", {"temperature": 0, "max_tokens": 5, "seed": 3}), ("score", "lm", {}),
     ("translate", "mt", {"beam_size": 1}), ("tag", "tagger", {})],
)
def test_each_kind_is_accepted_by_a_model_of_its_task(
    client: TestClient, models_of_every_task: None, kind: str, model: str, params: dict
) -> None:
    response = client.post("/v1/jobs", json={"kind": kind, "model": model, "inputs": ["a text"], "params": params})
    assert response.status_code == 202, response.text
    mismatch = client.post("/v1/jobs", json={"kind": kind, "model": "clf", "inputs": ["a text"]})
    assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "kind_not_supported"


def test_resolved_references_are_cached_until_an_alias_moves_here(
    client: TestClient, registered_model: str, tiny_classifier, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    from seqserve.shared.registry.service import NewVersion, move_alias, register_version

    monkeypatch.setenv("SEQSERVE_ALIAS_CACHE_SECONDS", "60")
    reset_settings()
    assert _submit(client, registered_model).json()["model_version"] == 1
    with session_scope() as session:  # another process moves the alias behind this API's back
        register_version(session, NewVersion(
            model_name=registered_model, task="classify", checkpoint_uri=str(tiny_classifier.checkpoint_path),
            sha256=tiny_classifier.sha256, size_bytes=1, metrics={"accuracy": 0.9}, primary_metric="accuracy",
            dataset_fingerprint="f",
        ))
        move_alias(session, registered_model, "production", 2)
    assert _submit(client, registered_model).json()["model_version"] == 1  # cached for up to 60 s here
    client.put(f"/v1/models/{registered_model}/aliases/production", json={"version": 2})
    assert _submit(client, registered_model).json()["model_version"] == 2  # a move through this API: at once


def test_a_request_that_loses_the_idempotency_race_replays_the_winner(
    client: TestClient, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seqserve.shared.jobs import repository as jobs_repo

    first = _submit(client, registered_model, **{"Idempotency-Key": "race"}).json()
    lookups = []
    real_lookup = jobs_repo.get_by_idempotency_key

    def lookup_too_early(session, team, key):  # type: ignore[no-untyped-def]
        lookups.append(key)  # the first look ran before the winner's insert committed
        return None if len(lookups) == 1 else real_lookup(session, team, key)

    monkeypatch.setattr(jobs_repo, "get_by_idempotency_key", lookup_too_early)
    again = _submit(client, registered_model, **{"Idempotency-Key": "race"})
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    assert again.headers["Idempotent-Replayed"] == "true" and lookups == ["race", "race"]
    assert len(client.get("/v1/jobs").json()["items"]) == 1


def test_the_queue_report_counts_jobs_waiting_apart_from_broker_messages(
    client: TestClient, registered_model: str
) -> None:
    """Canaries and group wake-ups are broker messages, not work: `jobs_queued` counts the jobs."""
    from seqserve.shared.config import get_settings
    from seqserve.shared.queueing import broker_redis

    broker = broker_redis(get_settings())
    assert broker is not None
    broker.lpush("inference.low", b"a canary nobody consumed")
    for text in ("one", "two", "three"):
        assert _submit(client, registered_model, text).status_code == 202
    queues = client.get("/v1/queues").json()["queues"]
    assert queues["inference.normal"]["jobs_queued"] == 3
    assert queues["inference.low"]["jobs_queued"] == 0 and queues["inference.low"]["depth"] == 1
    assert queues["inference.high"]["jobs_queued"] == 0
