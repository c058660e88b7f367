"""All API key queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from seqserve.shared.db.models import ApiKey


def add(session: Session, key: ApiKey) -> None:
    session.add(key)
    session.flush()


def by_name(session: Session, name: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.name == name))


def by_prefix(session: Session, prefix: str) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).all()


def list_all(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()


def touch(session: Session, key_id: int, now: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
