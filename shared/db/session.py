"""Engines and sessions, created lazily per process (a forked child makes its own).

The caller owns the transaction: `session_scope()` (tasks, CLI), `connection_scope()` (the
worker's hot path) or the API's request dependency commits or rolls back; repositories only
flush.

Autocommit scopes are for paths whose statements are each atomic on their own (a single
INSERT, a conditional UPDATE): every statement commits by itself, which saves the BEGIN and
COMMIT round trips (measured here: ~110 us of client CPU and ~200 us of wall time per
transaction, on top of ~90 us for an ORM session over a Core connection).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from seqserve.shared.config import get_settings

_engines: dict[tuple[int, str], Engine] = {}


def _configure_sqlite(engine: Engine) -> None:
    # WAL lets the API read while the worker writes; busy_timeout waits out a writer
    # instead of failing with "database is locked".
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


# A pooled connection idle longer than this is pinged before use (see `_ping_when_idle`).
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection on checkout only if it sat idle for a while.

    `pool_pre_ping` pings on every checkout: one more round trip per transaction, ~9-10% of a
    busy worker's and API process's py-spy samples. A connection checked in moments ago is
    alive; one idle longer (the server may have restarted or dropped it) is pinged, and a dead
    one is replaced before anyone uses it (the pool retries the checkout on DisconnectionError).
    A connection that dies while in steady use fails its statement once and SQLAlchemy
    invalidates the pool; the worker's task retries such errors.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        returned = record.info.get("returned_at")  # None: connected just now
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    # Sized for an API process holding many `Prefer: wait` requests at once.
    engine = create_engine(url, pool_size=10, max_overflow=30, pool_timeout=10)
    _ping_when_idle(engine)
    return engine


def get_engine() -> Engine:
    """The engine of this process for the configured URL."""
    url = get_settings().database_url
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = make_engine(url)
    return _engines[key]


_makers: dict[tuple[Engine, bool], sessionmaker[Session]] = {}
_autocommit: dict[Engine, Engine] = {}


def _autocommit_engine(engine: Engine) -> Engine:
    """The same pool, its connections in autocommit while checked out."""
    if engine not in _autocommit:
        _autocommit[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return _autocommit[engine]


def get_sessionmaker(autocommit: bool = False) -> sessionmaker[Session]:
    """One factory per engine and mode: every request and task asks for one."""
    engine = get_engine()
    if (engine, autocommit) not in _makers:
        bind = _autocommit_engine(engine) if autocommit else engine
        _makers[(engine, autocommit)] = sessionmaker(bind=bind, expire_on_commit=False)
    return _makers[(engine, autocommit)]


@contextmanager
def connection_scope(autocommit: bool = False) -> Iterator[Connection]:
    """A Core connection (no ORM unit of work) for hot paths: one transaction, committed on
    success and rolled back on error; or, with `autocommit`, each statement on its own."""
    engine = get_engine()
    if autocommit:
        with _autocommit_engine(engine).connect() as connection:
            yield connection
    else:
        with engine.begin() as connection:
            yield connection


@contextmanager
def session_scope(autocommit: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error. With `autocommit` each
    statement commits by itself (for a path that makes one write and needs no atomicity
    across statements)."""
    session = get_sessionmaker(autocommit)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Drop this process's engines (after a fork, or when tests switch databases)."""
    _makers.clear()
    _autocommit.clear()
    for key in [k for k in _engines if k[0] == os.getpid()]:
        _engines.pop(key).dispose()
    for key in [k for k in _engines if k[0] != os.getpid()]:
        # Inherited from the parent: close the pool without touching its sockets.
        _engines.pop(key).dispose(close=False)
