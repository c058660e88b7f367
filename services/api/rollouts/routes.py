"""Rollout routes: an alias's live state; its shadow, canary split and promotion policy;
promote on evidence (after warm-up); roll back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Request
from redis import Redis
from starlette.concurrency import run_in_threadpool

from seqserve.services.api.auth import ModelsRead, ModelsWrite
from seqserve.services.api.deps import CachesDep, SessionDep, SettingsDep
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.shared.registry.refs import ALIAS_PATTERN
from seqserve.shared.rollouts import promotion, service
from seqserve.shared.rollouts.schemas import AliasStateRead, PromoteRequest, PromotionRead, RollbackRequest, RolloutUpdate
from seqserve.shared.rollouts.service import RolloutError
from seqserve.shared.validation import Text

router = APIRouter(prefix="/v1/models", tags=["rollouts"], responses=AUTH_ERRORS)  # every route here needs a key

ModelName = Annotated[Text, Path(max_length=128)]
AliasName = Annotated[str, Path(pattern=f"^{ALIAS_PATTERN}$")]
T = TypeVar("T")


@contextmanager
def _as_api_errors() -> Iterator[None]:
    try:
        yield
    except RolloutError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.field) from exc


def _redis(request: Request) -> Redis | None:
    return request.app.state.job_queue.redis


@router.get("/{name}/aliases/{alias}", response_model=AliasStateRead, responses=responses(404))
def read_alias(name: ModelName, alias: AliasName, request: Request, session: SessionDep, _: ModelsRead
               ) -> AliasStateRead:
    """An alias's version, pending promotion, shadow agreement, canary arms, policy and warm workers."""
    with _as_api_errors():
        return service.read_state(session, _redis(request), name, alias)


@router.put("/{name}/aliases/{alias}/rollout", response_model=AliasStateRead, responses=responses(404))
def set_rollout(name: ModelName, alias: AliasName, body: RolloutUpdate, request: Request, session: SessionDep,
                caches: CachesDep, principal: ModelsWrite) -> AliasStateRead:
    """Set the alias's shadow version and rate, canary weights and promotion policy (audited)."""
    with _as_api_errors():
        service.configure(session, name, alias, body, principal.key_name)
        caches.rollouts.clear()
        return service.read_state(session, _redis(request), name, alias)


def _after_move(caches: CachesDep, work: Callable[[], T]) -> T:
    try:
        return work()
    finally:  # new jobs here resolve again at once (other API processes within alias_cache_seconds)
        caches.resolutions.clear()
        caches.rollouts.clear()


@router.post("/{name}/aliases/{alias}/promote", response_model=PromotionRead, responses=responses(404, 409))
async def promote(name: ModelName, alias: AliasName, body: PromoteRequest, request: Request, caches: CachesDep,
                  settings: SettingsDep, principal: ModelsWrite) -> PromotionRead:
    """Promote when the policy's live evidence holds (409 says why not); waits for warm workers."""
    def work() -> PromotionRead:
        with _as_api_errors():
            return promotion.promote(name, alias, body, principal.key_name, _redis(request), settings)

    return await run_in_threadpool(_after_move, caches, work)


@router.post("/{name}/aliases/{alias}/rollback", response_model=AliasStateRead, responses=responses(404, 409))
def rollback(name: ModelName, alias: AliasName, body: RollbackRequest, request: Request, session: SessionDep,
             caches: CachesDep, principal: ModelsWrite) -> AliasStateRead:
    """Restore the alias's state before its last change: version, shadow, canary, policy (audited)."""
    def work() -> AliasStateRead:
        with _as_api_errors():
            promotion.rollback(session, name, alias, principal.key_name, body.reason)
            return service.read_state(session, _redis(request), name, alias)

    return _after_move(caches, work)
