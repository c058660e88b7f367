"""`/v1/stats` and `/console` over the ASGI app: counts, percentiles and failures for jobs
created and finished through the job repository with a controlled clock, on the real
Postgres and Redis, and once on the embedded SQLite and filesystem broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from seqserve.services.api.stats.service import percentile
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.migrate import upgrade
from seqserve.shared.db.models import Job, JobStatus
from seqserve.shared.db.session import dispose_engines, session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.queueing import ALL_QUEUES, CANARY_TASK, INFERENCE_QUEUES, make_celery, queue_depths
from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version
from tests import processes
from tests.conftest import claim_group_of, create_key, finish


class Clock:
    """Stands in for the job repository's `utcnow`, so every stored time is one we chose."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(jobs_repo, "utcnow", fake)
    return fake


def _register(name: str, task: str) -> int:
    with session_scope() as session:
        version = register_version(session, NewVersion(
            model_name=name, task=task, checkpoint_uri="/absent.pt", sha256="0" * 64, size_bytes=1,
            metrics={"m": 1.0}, primary_metric="m", dataset_fingerprint="f",
        ))
        promote_if_better(session, version, 0.0)
        return version.id


def _queued(version_id: int, model: str, kind: str, created_at: datetime) -> uuid.UUID:
    with session_scope() as session:
        job = Job(kind=kind, model_name=model, model_ref=model, model_version_id=version_id, inputs=["x"],
                  params={}, priority="normal", status=JobStatus.queued.value, created_at=created_at)
        session.add(job)
        session.flush()
        return job.id


def _ended(clock: Clock, version_id: int, model: str, kind: str, latency: float, finished_at: datetime,
           status: JobStatus = JobStatus.succeeded, error: str | None = None) -> uuid.UUID:
    """A job created `latency` seconds before `finished_at`, claimed and finished then."""
    job_id = _queued(version_id, model, kind, finished_at - timedelta(seconds=latency))
    clock.now = finished_at
    if status is JobStatus.cancelled:
        with session_scope() as session:
            assert jobs_repo.cancel(session, job_id)
    else:
        (claimed,) = claim_group_of(job_id)  # the group holds no other queued job
        assert claimed.claim.job_id == job_id and finish(claimed, status, error=error)
    return job_id


@pytest.fixture()
def client(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


@pytest.fixture()
def models(db: str) -> dict[str, int]:
    return {"stats-clf": _register("stats-clf", "classify"), "stats-tagger": _register("stats-tagger", "tag")}


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([10.0, 20.0], 0) == 10.0 and percentile([10.0, 20.0], 100) == 20.0


def test_stats_count_every_status_and_time_the_window(client: TestClient, models: dict[str, int], clock: Clock) -> None:
    clf, tagger = models["stats-clf"], models["stats-tagger"]
    ended = utcnow() - timedelta(seconds=10)
    for seconds in range(1, 20):  # classify: 1..19 s succeeded, 20 s failed
        _ended(clock, clf, "stats-clf", "classify", seconds, ended)
    failed_id = _ended(clock, clf, "stats-clf", "classify", 20, ended, JobStatus.failed, "boom: out of cheese")
    _ended(clock, tagger, "stats-tagger", "tag", 0.5, ended)
    _ended(clock, tagger, "stats-tagger", "tag", 1.5, ended)
    _ended(clock, tagger, "stats-tagger", "tag", 99, ended, JobStatus.cancelled)  # ends, never ran
    _ended(clock, clf, "stats-clf", "classify", 500, utcnow() - timedelta(seconds=1000))  # before the window
    running = _queued(clf, "stats-clf", "classify", utcnow())
    assert [c.claim.job_id for c in claim_group_of(running)] == [running]
    for _ in range(2):
        _queued(clf, "stats-clf", "classify", utcnow())

    stats = client.get("/v1/stats", params={"window_seconds": 300}).json()

    assert stats["jobs_by_status"] == {"queued": 2, "running": 1, "succeeded": 22, "failed": 1, "cancelled": 1,
                                     "expired": 0}
    assert stats["window_seconds"] == 300 and stats["finished_in_window"] == 23
    assert stats["throughput_per_second"] == pytest.approx(23 / 300, abs=1e-6)
    classify, tag = stats["by_kind"]["classify"], stats["by_kind"]["tag"]
    assert (classify["finished"], classify["succeeded"], classify["failed"], classify["cancelled"]) == (20, 19, 1, 0)
    assert classify["latency_samples"] == 20 and classify["throughput_per_second"] == pytest.approx(20 / 300, abs=1e-6)
    # Latencies 1..20 s: p = 1 + q * 19 by linear interpolation.
    assert classify["p50_seconds"] == pytest.approx(10.5)
    assert classify["p95_seconds"] == pytest.approx(19.05)
    assert classify["p99_seconds"] == pytest.approx(19.81)
    assert (tag["finished"], tag["succeeded"], tag["cancelled"], tag["latency_samples"]) == (3, 2, 1, 2)
    assert (tag["p50_seconds"], tag["p95_seconds"], tag["p99_seconds"]) == pytest.approx((1.0, 1.45, 1.49))
    (failure,) = stats["recent_failures"]
    assert failure["id"] == str(failed_id) and failure["error"] == "boom: out of cheese"
    assert (failure["kind"], failure["model"], failure["model_version"]) == ("classify", "stats-clf", 1)
    # The two queued jobs wait on inference.normal (inserted here, so the broker holds no message).
    assert stats["queue_depth"] == dict.fromkeys(ALL_QUEUES, 0) | {"inference.normal": 2}
    assert stats["queue_depth_error"] is None

    narrow = client.get("/v1/stats", params={"window_seconds": 5}).json()
    assert narrow["by_kind"] == {} and narrow["finished_in_window"] == 0 and narrow["throughput_per_second"] == 0
    assert narrow["jobs_by_status"] == stats["jobs_by_status"]


def test_recent_failures_are_the_last_ten_newest_first(client: TestClient, models: dict[str, int], clock: Clock) -> None:
    start = utcnow() - timedelta(minutes=30)
    ids = [
        _ended(clock, models["stats-clf"], "stats-clf", "classify", 1, start + timedelta(seconds=i), JobStatus.failed,
               f"error {i}")
        for i in range(12)
    ]
    failures = client.get("/v1/stats").json()["recent_failures"]
    assert [f["id"] for f in failures] == [str(job_id) for job_id in reversed(ids[2:])]
    assert failures[0]["error"] == "error 11"


def test_queue_depth_is_null_with_an_error_when_the_broker_is_down(
    db: str, models: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BROKER_URL", f"redis://127.0.0.1:{processes.free_port()}/0")
    reset_settings()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as client:
        response = client.get("/v1/stats")
    assert response.status_code == 200
    stats = response.json()
    assert stats["queue_depth"] is None and "Connection" in stats["queue_depth_error"]
    assert stats["jobs_by_status"]["queued"] == 0


def test_canaries_are_not_queue_depth_the_waiting_jobs_are(client: TestClient, models: dict[str, int]) -> None:
    settings = get_settings()
    celery = make_celery(settings)
    for queue in INFERENCE_QUEUES:  # as beat sends them, with nobody consuming
        celery.send_task(CANARY_TASK, args=[queue], queue=queue)
    _queued(models["stats-clf"], "stats-clf", "classify", utcnow())
    assert queue_depths(settings, INFERENCE_QUEUES) == dict.fromkeys(INFERENCE_QUEUES, 1)  # the broker holds them

    depth = client.get("/v1/stats").json()["queue_depth"]
    assert {queue: depth[queue] for queue in INFERENCE_QUEUES} == {"inference.high": 0, "inference.normal": 1,
                                                                  "inference.low": 0}


def test_window_must_be_positive(client: TestClient) -> None:
    response = client.get("/v1/stats", params={"window_seconds": 0})
    assert response.status_code == 422 and response.json()["error"]["field"] == "window_seconds"


def test_stats_on_the_embedded_sqlite_and_filesystem_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    for key in ("SEQSERVE_DATABASE_URL", "SEQSERVE_BROKER_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SEQSERVE_VAR_DIR", str(tmp_path / "var"))
    reset_settings()
    dispose_engines()
    upgrade(f"sqlite:///{tmp_path / 'var' / 'seqserve.db'}")
    try:
        version = _register("lite-clf", "classify")
        ended = utcnow() - timedelta(seconds=30)
        for seconds in (2, 4, 6):
            _ended(clock, version, "lite-clf", "classify", seconds, ended)
        _ended(clock, version, "lite-clf", "classify", 8, ended, JobStatus.failed, "lite failure")
        with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as client:
            stats = client.get("/v1/stats", params={"window_seconds": 60}).json()
    finally:
        dispose_engines()
        reset_settings()
    assert stats["jobs_by_status"]["succeeded"] == 3 and stats["jobs_by_status"]["failed"] == 1
    classify = stats["by_kind"]["classify"]
    assert classify["finished"] == 4 and classify["p50_seconds"] == pytest.approx(5.0)
    assert classify["p99_seconds"] == pytest.approx(2 + 0.99 * 3 * 2)
    assert stats["recent_failures"][0]["error"] == "lite failure"
    assert stats["queue_depth"] == dict.fromkeys(ALL_QUEUES, 0)


def test_console_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>seqserve console</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for name, media_type in (("console.js", "text/javascript"), ("console.css", "text/css")):
        asset = client.get(f"/console/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media_type)
        assert f"console/static/{name}" in page.text
    assert client.get("/console/static/routes.py").status_code == 404
    assert client.get("/console/static/..%2Froutes.py").status_code == 404
