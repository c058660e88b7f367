"""Registry routes: browse models, promote or roll back an alias."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, StrictInt

from seqserve.services.api.auth import ModelsRead, ModelsWrite
from seqserve.services.api.deps import CachesDep, SessionDep
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.shared.registry import repository as registry_repo
from seqserve.shared.registry.hints import not_found_message
from seqserve.shared.registry.refs import ALIAS_PATTERN
from seqserve.shared.registry.schemas import ModelRead
from seqserve.shared.registry.service import RegistryError, move_alias
from seqserve.shared.validation import StrictText, Text

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_ERRORS)  # every route here needs a key


class AliasUpdate(BaseModel):
    version: StrictInt = Field(ge=1, le=2**31 - 1, description="The version the alias should point at.")
    reason: StrictText = Field("", max_length=500, description="Why: kept in the audit trail.")


class AliasRead(BaseModel):
    model: str
    alias: str
    version: int


@router.get("", response_model=list[ModelRead])
def list_models(session: SessionDep, _: ModelsRead) -> list[ModelRead]:
    """Registered models with the job kinds they serve, their versions and aliases."""
    return [ModelRead.from_row(model) for model in registry_repo.list_models(session)]


@router.get("/{name}", response_model=ModelRead, responses=responses(404))
def read_model(name: Annotated[Text, Path(max_length=128)], session: SessionDep, _: ModelsRead) -> ModelRead:
    """One model: versions with metrics and checksums, aliases."""
    model = registry_repo.get_model(session, name)
    if model is None:
        raise ApiError(404, "model_not_found", not_found_message(session, f"model '{name}' is not registered", None), "name")
    return ModelRead.from_row(model)


@router.put("/{name}/aliases/{alias}", response_model=AliasRead, responses=responses(404))
def set_alias(
    name: Annotated[Text, Path(max_length=128)],
    alias: Annotated[str, Path(pattern=f"^{ALIAS_PATTERN}$")],
    body: AliasUpdate,
    session: SessionDep,
    caches: CachesDep,
    principal: ModelsWrite,
) -> AliasRead:
    """Point an alias at a version (promote or roll back); new jobs resolve to it at once."""
    try:
        version = move_alias(session, name, alias, body.version, principal.key_name, body.reason)
    except RegistryError as exc:
        field = "version" if "version" in str(exc) else "name"
        raise ApiError(404, "model_not_found", str(exc), field) from exc
    # New jobs here resolve again at once (other API processes within alias_cache_seconds);
    # a request racing this one resolves to either version, as it would without a cache.
    caches.resolutions.clear()
    return AliasRead(model=name, alias=alias, version=version.version)
