"""Pooled connections: pinged only after sitting idle, and a dead idle one is replaced unseen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from seqserve.shared.db import session as db_session
from tests.conftest import PG_ADMIN_URL


@pytest.fixture()
def pings() -> list[int]:
    """One entry per ping the engine below sends."""
    return []


@pytest.fixture()
def engine(pg_url: str, pings: list[int], monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    engine = db_session.make_engine(pg_url)
    ping = engine.dialect.do_ping

    def counted(dbapi_connection) -> bool:  # type: ignore[no-untyped-def]
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)  # still the real ping, counted
    yield engine
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    admin.dispose()


def test_a_connection_in_steady_use_is_not_pinged(engine: Engine, pings: list[int]) -> None:
    pids = {_backend_pid(engine) for _ in range(20)}
    assert len(pids) == 1  # one pooled connection, reused
    assert pings == []


def test_a_dead_idle_connection_is_replaced_before_use(engine: Engine, pings: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    first = _backend_pid(engine)
    _terminate(first)  # the server drops it while it sits in the pool (a restart, an idle timeout)
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle "long enough"
    second = _backend_pid(engine)
    assert second != first
    assert len(pings) == 1


def test_a_connection_that_dies_in_steady_use_fails_once(engine: Engine, pings: list[int]) -> None:
    # The trade-off of not pinging every checkout: one statement fails, then the pool is fresh.
    first = _backend_pid(engine)
    _terminate(first)
    with pytest.raises(OperationalError):
        _backend_pid(engine)
    assert _backend_pid(engine) != first
    assert pings == []
