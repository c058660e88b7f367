"""Drift route: per version of a model, its dev reference and the workers' live statistics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from seqserve.services.api.auth import ModelsRead
from seqserve.services.api.deps import SessionDep
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.shared import drift
from seqserve.shared.registry import repository as registry_repo
from seqserve.shared.validation import Text

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_ERRORS)  # every route here needs a key

NO_REFERENCE = "no reference statistics: the version was registered before they were recorded, or its task records none"


class VersionDrift(BaseModel):
    version: int
    reference: dict[str, Any] | None = Field(description="Dev profile at training time; null if none was recorded.")
    note: str | None = Field(description="Why there is no reference or no live profile.")
    live: dict[str, Any] | None = Field(description="A worker's rolling profile of served inputs (latest).")
    scores: dict[str, float] = Field(description="PSI of live vs reference per aspect (lengths, chars, predictions).")


@router.get("/{name}/drift", response_model=list[VersionDrift], responses=responses(404))
def read_drift(name: Annotated[Text, Path(max_length=128)], request: Request, session: SessionDep,
               _: ModelsRead) -> list[VersionDrift]:
    """Each version's dev reference beside what a worker served recently, with drift scores."""
    model = registry_repo.get_model(session, name)
    if model is None:
        raise ApiError(404, "model_not_found", f"model '{name}' is not registered", "name")
    redis = request.app.state.job_queue.redis
    answer = []
    for version in model.versions:
        live = drift.read_live(redis, version.id)
        note = NO_REFERENCE if not version.drift_reference else None if live else "no served inputs in the last hour"
        answer.append(VersionDrift(version=version.version, reference=version.drift_reference, note=note,
                                   live=live["live"] if live else None, scores=live["scores"] if live else {}))
    return answer
