"""Request-scoped dependencies. The request owns its transaction: `get_session` is its unit
of work (committed, then its queued messages sent, or rolled back), ended when the route
function returns, before the response goes out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from seqserve.services.api.caches import ApiCaches
from seqserve.shared.config import Settings, get_settings
from seqserve.shared.db.session import session_scope

T = TypeVar("T")


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


def in_unit_of_work(work: Callable[[Session], T], autocommit: bool = False) -> T:
    """`work` in a unit of work of its own, for a route that runs it in the threadpool itself
    (the submit route: no dependency hop on the hottest path)."""
    with session_scope(autocommit) as session:
        return work(session)


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


def get_caches(request: Request) -> ApiCaches:
    return request.app.state.caches


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
CeleryDep = Annotated[Celery, Depends(get_celery)]
CachesDep = Annotated[ApiCaches, Depends(get_caches)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
