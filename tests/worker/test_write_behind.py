"""A drain writes a pass's results on a thread of its own while it claims and computes the
next pass (Postgres): every job still ends written once, the passes' writes commit in pass
order, a failed write fails the wake-up with no lease left held, and it is off by default."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from seqserve.services.worker import runner
from seqserve.services.worker.runner import run_wakeup
from seqserve.shared.config import reset_settings
from seqserve.shared.db.models import Job
from seqserve.shared.db.session import session_scope
from tests.conftest import built_context, create_key
from tests.worker.test_batching import wakeup_of

WRITER = "seqserve-write-behind"


@pytest.fixture()
def client(db: str, registered_model: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 4}')  # ten jobs: passes of 4, 4, 2
    monkeypatch.setenv("SEQSERVE_WORKER_WRITE_BEHIND", "true")
    monkeypatch.setenv("SEQSERVE_WAKEUP_DRAIN_SECONDS", "60")  # one wake-up drains all, slow writes or not
    reset_settings()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _submit(client: TestClient, count: int) -> list[uuid.UUID]:
    ids = []
    for number in range(count):
        response = client.post("/v1/jobs", json={"kind": "classify", "model": "tiny-sst2", "inputs": [f"film {number}"]})
        assert response.status_code == 202, response.text
        ids.append(uuid.UUID(response.json()["id"]))
    return ids


def _recording(monkeypatch: pytest.MonkeyPatch, log: list[Any], slow_first: float = 0.0,
               fail_first: bool = False) -> None:
    """Log each write's start and end (with its thread) and each later claim's start; the
    first write takes `slow_first` s more, then fails if `fail_first`."""
    write, claim = runner._write, runner.next_batch
    writes = iter(range(1_000))

    def recorded_write(context: Any, batch: Any, *args: Any, **kwargs: Any) -> None:
        number = next(writes)
        log.append(("write", number, threading.current_thread().name))
        if number == 0:
            time.sleep(slow_first)  # long enough that the next claim surely starts meanwhile, if it may
            if fail_first:
                raise RuntimeError("the database went away")
        write(context, batch, *args, **kwargs)
        log.append(("written", number))

    monkeypatch.setattr(runner, "_write", recorded_write)
    monkeypatch.setattr(runner, "next_batch", lambda *a: log.append(("claim",)) or claim(*a))


def _statuses(ids: list[uuid.UUID]) -> list[tuple[str, int]]:
    with session_scope() as session:
        return [(job.status, job.attempts) for job in (session.get(Job, i) for i in ids) if job is not None]


def test_the_next_pass_is_claimed_while_the_last_one_is_written(client: TestClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _submit(client, 10)
    log: list[Any] = []
    _recording(monkeypatch, log, slow_first=1.0)
    context = built_context()
    report = run_wakeup(wakeup_of(ids[0]), context)
    assert (report.batches, report.jobs) == (3, 10)
    assert _statuses(ids) == [("succeeded", 1)] * 10  # each written once, by its first attempt
    # The first write ran behind: the second pass's claim came before it ended.
    assert log.index(("claim",)) < log.index(("written", 0))
    assert log[0] == ("write", 0, f"{WRITER}_0")
    # One write at a time, in pass order.
    ends = [entry[1] for entry in log if entry[0] == "written"]
    starts = [entry[1] for entry in log if entry[0] == "write"]
    assert ends == starts == [0, 1, 2]
    assert all(log.index(("written", n)) < log.index(next(e for e in log if e[:2] == ("write", n + 1)))
               for n in (0, 1))
    assert context.leases.held() == []
    assert not any(thread.name.startswith(WRITER) for thread in threading.enumerate())


def test_a_write_that_fails_behind_fails_the_wakeup(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _submit(client, 10)
    log: list[Any] = []
    _recording(monkeypatch, log, slow_first=0.1, fail_first=True)
    context = built_context()
    with pytest.raises(RuntimeError, match="went away"):
        run_wakeup(wakeup_of(ids[0]), context)
    # The first pass's jobs stay running under leases no one renews: they lapse and are run again.
    assert [status for status, _ in _statuses(ids[:4])] == ["running"] * 4
    assert context.leases.held() == []
    assert not any(thread.name.startswith(WRITER) for thread in threading.enumerate())


def test_switched_off_every_write_is_inline(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQSERVE_WORKER_WRITE_BEHIND")
    reset_settings()  # off is the default
    ids = _submit(client, 10)
    log: list[Any] = []
    _recording(monkeypatch, log)
    run_wakeup(wakeup_of(ids[0]), built_context())
    assert {entry[2] for entry in log if entry[0] == "write"} == {"MainThread"}
    assert log.index(("written", 0)) < log.index(("claim",))
    assert _statuses(ids) == [("succeeded", 1)] * 10
