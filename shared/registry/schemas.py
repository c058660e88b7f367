"""Registry response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from seqserve.shared.db.models import Model
from seqserve.shared.jobs.kinds import kinds_for_task


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    metrics: dict[str, Any]
    primary_metric: str
    architecture: dict[str, Any]
    sha256: str
    size_bytes: int
    dataset_fingerprint: str
    code_version: str
    artifacts: dict[str, Any]
    promotion_note: str
    training_run_id: uuid.UUID | None
    created_at: datetime


class ModelRead(BaseModel):
    name: str
    task: str
    kinds: list[str]
    aliases: dict[str, int]
    versions: list[VersionRead]
    created_at: datetime

    @classmethod
    def from_row(cls, model: Model) -> ModelRead:
        return cls(
            name=model.name,
            task=model.task,
            kinds=kinds_for_task(model.task),
            aliases={alias.alias: alias.version.version for alias in model.aliases},
            versions=[VersionRead.model_validate(v) for v in model.versions],
            created_at=model.created_at,
        )
