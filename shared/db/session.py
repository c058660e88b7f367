"""Engines and sessions, created lazily per process (a forked child makes its own).

The caller owns the transaction: `session_scope()` (tasks, CLI) or the API's request
dependency commits or rolls back; repositories only flush.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.config import get_settings

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


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    # Sized for an API process holding many `Prefer: wait` requests at once.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30, pool_timeout=10)


def get_engine() -> Engine:
    """The engine of this process for the configured URL."""
    url = get_settings().database_url
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = make_engine(url)
    return _engines[key]


_makers: dict[Engine, sessionmaker[Session]] = {}


def get_sessionmaker() -> sessionmaker[Session]:
    """One factory per engine: every request and task asks for one."""
    engine = get_engine()
    if engine not in _makers:
        _makers[engine] = sessionmaker(bind=engine, expire_on_commit=False)
    return _makers[engine]


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    session = get_sessionmaker()()
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
    for key in [k for k in _engines if k[0] == os.getpid()]:
        _engines.pop(key).dispose()
    for key in [k for k in _engines if k[0] != os.getpid()]:
        # Inherited from the parent: close the pool without touching its sockets.
        _engines.pop(key).dispose(close=False)
