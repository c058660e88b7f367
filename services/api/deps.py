"""Request-scoped dependencies. The request owns its transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from seqserve.shared.config import Settings, get_settings
from seqserve.shared.db.session import session_scope


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


SessionDep = Annotated[Session, Depends(get_session)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
