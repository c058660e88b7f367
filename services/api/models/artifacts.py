"""A registered version's files over HTTP: its training curve and its checkpoint. The paths
come from registry rows the trainer wrote, never from the request, and never leave the server."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from seqserve.services.api.auth import ModelsRead, ModelsWrite
from seqserve.services.api.deps import SessionDep
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.shared.db.models import ModelVersion
from seqserve.shared.registry import repository as registry_repo
from seqserve.shared.registry.hints import not_found_message
from seqserve.shared.validation import Text

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_ERRORS)

SHA256_HEADER = "X-Checkpoint-SHA256"
ModelName = Annotated[Text, Path(max_length=128)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _version(session: Session, name: str, number: int) -> ModelVersion:
    model = registry_repo.get_model(session, name)
    if model is None:
        raise ApiError(404, "model_not_found", not_found_message(session, f"model '{name}' is not registered", None),
                       "name")
    version = registry_repo.get_version(session, model.id, number)
    if version is None:
        raise ApiError(404, "model_not_found", f"model '{name}' has no version {number}", "version")
    return version


def _existing(stored: str | None, what: str, name: str, number: int) -> FilePath:
    path = FilePath(stored) if stored else None
    if path is None or not path.is_file():
        raise ApiError(404, "artifact_not_found", f"{name}:{number} has no {what} on this server", None)
    return path


@router.get("/{name}/versions/{version}/curve.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "The training curve"}, **responses(404)})
def training_curve(name: ModelName, version: VersionNumber, session: SessionDep, _: ModelsRead) -> FileResponse:
    """The version's training curve (loss and dev metric per epoch), a PNG."""
    row = _version(session, name, version)
    path = _existing(row.artifacts.get("training_curve"), "training curve", name, version)
    return FileResponse(path, media_type="image/png")


@router.get("/{name}/versions/{version}/checkpoint", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": f"The checkpoint, streamed; its sha256 in `{SHA256_HEADER}`"},
                       **responses(404)})
def checkpoint(name: ModelName, version: VersionNumber, session: SessionDep, _: ModelsWrite) -> FileResponse:
    """Download the version's checkpoint (the registry's sha256 in a header, to check it by)."""
    row = _version(session, name, version)
    path = _existing(row.checkpoint_uri, "checkpoint", name, version)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{name}-v{version}.pt",
                        headers={SHA256_HEADER: row.sha256})
