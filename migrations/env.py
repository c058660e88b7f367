"""Alembic environment: the URL comes from seqserve's settings unless the caller set one."""

from __future__ import annotations

from alembic import context

from seqserve.shared.config import get_settings
from seqserve.shared.db import models  # noqa: F401  (registers the tables on the metadata)
from seqserve.shared.db.base import Base
from seqserve.shared.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        # render_as_batch lets ALTERs run on SQLite too.
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
