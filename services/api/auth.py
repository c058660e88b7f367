"""Who may call what. Every route states its policy with one of the dependencies below;
tests/api/test_auth_matrix.py holds the table and fails for a route without one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from seqserve.services.api.errors import ApiError
from seqserve.shared.auth.scopes import Scope
from seqserve.shared.auth.service import Principal, digest, verify
from seqserve.shared.config import Settings, get_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import DEFAULT_TEAM
from seqserve.shared.db.session import session_scope

log = logging.getLogger(__name__)

# auto_error=False: a missing or malformed header gets our JSON 401, not FastAPI's 403.
bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sk_...`.")
AUTH_OFF = Principal("auth-off", DEFAULT_TEAM, frozenset({Scope.admin.value}), None)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, "Authorization", headers={"WWW-Authenticate": "Bearer"})


def _verify_now(secret: str) -> Principal | None:
    with session_scope() as session:
        return verify(session, secret)


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller's key, from the cache when verified within auth_cache_seconds."""
    settings = get_settings()
    if settings.auth == "off":
        return AUTH_OFF
    if credentials is None:
        raise _unauthorized("send an API key: Authorization: Bearer <key>")
    caches, key = request.app.state.caches, digest(credentials.credentials)
    principal = caches.principals.cached(key, settings.auth_cache_seconds)
    if principal is None:
        principal = await run_in_threadpool(_verify_now, credentials.credentials)
        if principal is None:
            raise _unauthorized("unknown or revoked API key")
        caches.principals.put(key, principal)
    if principal.expires_at is not None and principal.expires_at <= utcnow():
        raise _unauthorized(f"API key '{principal.key_name}' expired at {principal.expires_at.isoformat()}")
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal if its key grants `scope` (admin grants all)."""

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.allows(scope):
            raise ApiError(403, "insufficient_scope", f"this needs the '{scope.value}' scope", "Authorization")
        return principal

    dependency.__name__ = f"require_{scope.name}"
    return dependency


async def metrics_access(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """/metrics is open unless SEQSERVE_METRICS_AUTH=bearer (then it needs metrics:read)."""
    if settings.metrics_auth == "bearer":
        credentials = await bearer(request)
        principal = await authenticate(request, credentials)
        await require(Scope.metrics_read)(principal)


def warn_if_off(settings: Settings) -> None:
    if settings.auth == "off":
        log.warning("SEQSERVE_AUTH=off: every request is served as an admin, without a key")


JobsRead = Annotated[Principal, Security(require(Scope.jobs_read))]
JobsWrite = Annotated[Principal, Security(require(Scope.jobs_write))]
ModelsRead = Annotated[Principal, Security(require(Scope.models_read))]
ModelsWrite = Annotated[Principal, Security(require(Scope.models_write))]
TrainingWrite = Annotated[Principal, Security(require(Scope.training_write))]
Admin = Annotated[Principal, Security(require(Scope.admin))]
