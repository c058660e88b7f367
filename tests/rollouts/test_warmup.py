"""Warm-up in-process, on the test database and Redis: a worker's warmer loads and runs the
versions rollouts need and reports them warm; a promotion with a live worker that never
reports warm moves after the timeout and says so (the documented fallback)."""

from __future__ import annotations

import time

import pytest
import redis

from seqserve.services.worker.context import WorkerContext
from seqserve.services.worker.warmup import Warmer
from seqserve.shared import consumers
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.db.session import session_scope
from seqserve.shared.queueing import make_celery
from seqserve.shared.registry.service import NewVersion, register_version
from seqserve.shared.rollouts import promotion, warm
from seqserve.shared.rollouts.schemas import PromoteRequest
from seqserve.shared.rollouts.state import rollout_row
from tests.conftest import REDIS_URL, register_tiny


@pytest.fixture()
def two_versions(db: str, tiny_classifier) -> int:  # type: ignore[no-untyped-def]
    register_tiny(tiny_classifier)
    with session_scope() as session:
        o = tiny_classifier
        version = register_version(session, NewVersion(
            model_name="tiny-sst2", task="classify", checkpoint_uri=str(o.checkpoint_path), sha256=o.sha256,
            size_bytes=o.size_bytes, metrics=o.metrics, primary_metric=o.primary_metric,
            dataset_fingerprint=o.data_fingerprint))
        rollout_row(session, version.model_id, "production", create=True).pending_version_id = version.id  # type: ignore[union-attr]
        return version.id


def test_warmer_loads_pending_and_serving_versions_and_reports_them(two_versions: int) -> None:
    context = WorkerContext.build(make_celery(), get_settings())
    warmer = Warmer(context)
    warmed = warmer.tick()
    assert warmed[0] == two_versions  # the pending promotion first
    assert len(context.models) == len(warmed) == 2  # and what production serves
    assert warmer.tick() == []  # once per process
    client = redis.Redis.from_url(REDIS_URL)
    assert warm.warm_on(client, two_versions) == [warmer.name]
    assert sorted(warm.workers(client)[warmer.name]["warm_versions"]) == sorted(warmed)
    context.leases.stop()


def test_promotion_moves_after_the_warmup_timeout_and_says_how_many_were_warm(
        two_versions: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_ROLLOUT_WARMUP_TIMEOUT_SECONDS", "0.5")
    reset_settings()
    client = redis.Redis.from_url(REDIS_URL)
    consumers.record(client, "celery@silent", ["inference.normal"], time.time(), 30)  # live, never warm
    started = time.monotonic()
    outcome = promotion.promote("tiny-sst2", "production", PromoteRequest(version=2), "test", client,
                                get_settings())
    assert 0.5 <= time.monotonic() - started < 10
    assert outcome.warm_timed_out and (outcome.warm_processes, outcome.expected_workers) == (0, 1)
    assert outcome.state.version == 2 and "warm-up timed out: 0 of 1" in outcome.reason
