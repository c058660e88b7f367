"""API key routes (admin): create, list, change limits, revoke. The same as `seqserve keys ...`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from seqserve.services.api.auth import Admin
from seqserve.services.api.deps import CachesDep, SessionDep
from seqserve.services.api.errors import AUTH_ERRORS, ApiError
from seqserve.shared.auth import repository as keys_repo
from seqserve.shared.auth import service as keys
from seqserve.shared.auth.schemas import NAME_PATTERN, ApiKeyCreate, ApiKeyCreated, ApiKeyLimitsUpdate, ApiKeyRead

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=AUTH_ERRORS)  # every route here needs a key


@router.post("", status_code=201, response_model=ApiKeyCreated, responses={409: {"description": "Name taken"}})
def create_key(body: ApiKeyCreate, session: SessionDep, principal: Admin) -> ApiKeyCreated:
    """Create a key; its secret is in this answer only."""
    try:
        key, secret = keys.create(session, body.name, body.team, [s.value for s in body.scopes], body.expires_days,
                                  actor=principal.key_name, limits=body.limits())
    except keys.ApiKeyError as exc:
        raise ApiError(409, "key_exists", str(exc), "name") from exc
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), secret=secret)


@router.get("", response_model=list[ApiKeyRead])
def list_keys(session: SessionDep, _: Admin) -> list[ApiKeyRead]:
    """Every key with its team, scopes, limits and times; never a secret."""
    return [ApiKeyRead.model_validate(key) for key in keys_repo.list_all(session)]


@router.post("/{name}/revoke", response_model=ApiKeyRead, responses={404: {"description": "Unknown key"}})
def revoke_key(name: Annotated[str, Path(pattern=NAME_PATTERN)], session: SessionDep, caches: CachesDep,
               principal: Admin) -> ApiKeyRead:
    """Revoke a key: refused here at once, by other API processes within SEQSERVE_AUTH_CACHE_SECONDS."""
    try:
        key = keys.revoke(session, name, actor=principal.key_name)
    except keys.ApiKeyError as exc:
        raise ApiError(404, "key_not_found", str(exc), "name") from exc
    caches.principals.clear()
    return ApiKeyRead.model_validate(key)


@router.patch("/{name}/limits", response_model=ApiKeyRead,
              responses={404: {"description": "Unknown key"}, 409: {"description": "The key is revoked"}})
def update_key_limits(name: Annotated[str, Path(pattern=NAME_PATTERN)], body: ApiKeyLimitsUpdate,
                      session: SessionDep, caches: CachesDep, principal: Admin) -> ApiKeyRead:
    """Change a key's rate limit, input quota or max priority without a new secret; `null`
    returns a field to the settings' default. Here at once, in other API processes within
    SEQSERVE_AUTH_CACHE_SECONDS; counts already charged in the current window stay."""
    try:
        key = keys.update_limits(session, name, body.changes(), actor=principal.key_name)
    except keys.KeyRevokedError as exc:
        raise ApiError(409, "key_revoked", str(exc), "name") from exc
    except keys.ApiKeyError as exc:
        raise ApiError(404, "key_not_found", str(exc), "name") from exc
    caches.principals.clear()
    return ApiKeyRead.model_validate(key)
