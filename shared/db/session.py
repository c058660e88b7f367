"""The database of this process: one engine and its sessions, built lazily (a forked child
builds its own).

The caller owns the transaction: `session_scope()` is the one unit of work (the API's request
dependency, a task wrapper, the CLI): it commits or rolls back, then sends the messages the
work queued with `after_commit(session)`; repositories and services only flush.

`session_scope(autocommit=True)` is the one fast path, for work whose statements are each
atomic on their own (one INSERT, one conditional UPDATE): every statement commits by itself,
which saves the BEGIN and COMMIT round trips (measured: ~110 us of client CPU and ~200 us of
wall time per transaction; docs/benchmarks/job-path.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from seqserve.shared import json_codec
from seqserve.shared.config import get_settings


def _configure_sqlite(engine: Engine) -> None:
    # WAL lets the API read while the worker writes; busy_timeout waits out a writer
    # instead of failing with "database is locked".
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
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
    def _returned(_dbapi_connection, record) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:
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
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               json_serializer=json_codec.dumps, json_deserializer=json_codec.loads)
        _configure_sqlite(engine)
        return engine
    # Sized for an API process holding many `Prefer: wait` requests at once.
    engine = create_engine(url, pool_size=10, max_overflow=30, pool_timeout=10,
                           json_serializer=json_codec.dumps, json_deserializer=json_codec.loads)
    _ping_when_idle(engine)
    return engine


class Database:
    """One process's engine (one pool) and its two session factories."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pid = os.getpid()
        self.engine = make_engine(url)
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        # The same pool, its connections in autocommit while checked out.
        autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._autocommit_sessions = sessionmaker(bind=autocommit, expire_on_commit=False)

    def session(self, autocommit: bool = False) -> Session:
        return (self._autocommit_sessions if autocommit else self._sessions)()

    def dispose(self) -> None:
        # Inherited from a parent process: close the pool without touching its sockets.
        self.engine.dispose(close=self.pid == os.getpid())


_database: Database | None = None


def database() -> Database:
    """This process's database for the configured URL (rebuilt after a fork or a URL change)."""
    global _database
    url = get_settings().database_url
    if _database is None or _database.pid != os.getpid() or _database.url != url:
        if _database is not None:
            _database.dispose()
        _database = Database(url)
    return _database


class AfterCommit:
    """Messages a unit of work queues, sent once its transaction committed (a worker must
    never find a message before its rows). A send that fails runs its `undo` in a new
    transaction (withdraw what the message was for) and the error propagates."""

    def __init__(self) -> None:
        self._sends: list[tuple[Callable[[], None], Callable[[Session], None] | None]] = []

    def add(self, send: Callable[[], None], undo: Callable[[Session], None] | None = None) -> None:
        self._sends.append((send, undo))

    def run(self) -> None:
        sends, self._sends = self._sends, []
        for send, undo in sends:
            try:
                send()
            except Exception:
                if undo is not None:
                    with session_scope() as session:
                        undo(session)
                raise


def after_commit(session: Session) -> AfterCommit:
    """The after-commit publisher of the unit of work `session` belongs to."""
    return session.info.setdefault("after_commit", AfterCommit())


@contextmanager
def session_scope(autocommit: bool = False) -> Iterator[Session]:
    """The unit of work: commit on success, roll back on error, then send what it queued with
    `after_commit`. With `autocommit` each statement commits by itself."""
    session = database().session(autocommit)
    try:
        yield session
        session.commit()
        publisher = session.info.pop("after_commit", None)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    if publisher is not None:
        publisher.run()


def dispose_engines() -> None:
    """Drop this process's database (after a fork, or when tests switch databases)."""
    global _database
    if _database is not None:
        _database.dispose()
        _database = None
