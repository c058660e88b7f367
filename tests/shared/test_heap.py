"""Startup objects leave the collector's full passes (see seqserve.shared.heap)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from seqserve.shared import heap


@pytest.fixture()
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # leave the test process as it was


def _full_pass_seconds() -> float:
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def test_frozen_objects_leave_full_collections(unfrozen: None) -> None:
    import seqserve.services.worker.app  # noqa: F401  (torch, Celery, SQLAlchemy: what a worker holds)

    before = min(_full_pass_seconds() for _ in range(3))
    frozen = heap.freeze_startup_objects()
    after = min(_full_pass_seconds() for _ in range(3))
    assert frozen > 100_000 and len(gc.get_objects()) < 0.05 * frozen
    assert after < before / 5  # ~120 ms -> a few ms on the development machine


def test_the_worker_freezes_in_both_processes(unfrozen: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqserve.services.worker import app

    # A child also starts its warm-up thread; one started here would poll every later test's
    # database for the rest of the session.
    warmers: list[None] = []
    monkeypatch.setattr(app, "_start_warmer", lambda: warmers.append(None))
    app._before_pool()  # the consuming process, before its pool forks
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    app._after_fork()  # each prefork child
    assert gc.get_freeze_count() > 0 and len(warmers) == 1


def test_the_api_freezes_once_started(db: str, unfrozen: None) -> None:
    from fastapi.testclient import TestClient

    from seqserve.services.api.main import create_app

    with TestClient(create_app()) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 0
