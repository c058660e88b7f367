"""Registry routes (read-only here; the trainer registers versions)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import SessionDep
from shared.registry import repository as registry_repo
from shared.registry.schemas import ModelRead

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=list[ModelRead])
def list_models(session: SessionDep) -> list[ModelRead]:
    """Registered models with the job kinds they serve, their versions and aliases."""
    return [ModelRead.from_row(model) for model in registry_repo.list_models(session)]
