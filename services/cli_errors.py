"""Errors a `seqserve` user can cause: each is one line saying what to do, exit code 2 (as
argparse's own usage errors), never a traceback. Commands raise UsageError; `main` prints it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from seqserve.shared.config import get_settings


class UsageError(Exception):
    """A mistake the user can fix; the message says how."""


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def require_schema() -> None:
    """Refuse to run against a database the migrations have not built (or not to head)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import exc as sa_exc

    from seqserve.shared.db.migrate import alembic_config
    from seqserve.shared.db.session import make_engine

    url = get_settings().database_url
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    engine = make_engine(url)  # its own, disposed here: servers fork after this check
    try:
        with engine.connect() as conn, _quiet("alembic.runtime.migration"):  # not its "Context impl" lines
            current = set(MigrationContext.configure(conn).get_current_heads())
    except sa_exc.SQLAlchemyError as exc:
        reason = str(exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc).strip().splitlines()[0]
        raise UsageError(f"cannot reach the database at {_safe(url)} ({reason}); check SEQSERVE_DATABASE_URL") from None
    finally:
        engine.dispose()
    if current != heads:
        state = "has no schema" if not current else f"is at revision {','.join(sorted(current))}"
        raise UsageError(f"the database at {_safe(url)} {state}, not {','.join(sorted(heads))}: "
                         "run `seqserve db upgrade` first")


def _safe(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def check_training_request(task: str, preset: str, overrides: dict[str, Any]) -> None:
    """What `seqserve train` checks before a run row exists: overrides, then data files."""
    from seqserve.shared.training.data_files import MissingDataError, check_data
    from seqserve.shared.training.presets import resolve_config

    data_dir = get_settings().data_dir
    assert data_dir is not None
    try:
        check_data(task, resolve_config(task, preset, overrides), data_dir)
    except (ValueError, MissingDataError) as exc:  # OverrideError is a ValueError
        raise UsageError(str(exc)) from None
