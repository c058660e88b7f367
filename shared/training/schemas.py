"""Training-run request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from seqserve.shared.db.models import TrainingRun
from seqserve.shared.tasks import TaskName
from seqserve.shared.training.presets import PresetName, validate_overrides
from seqserve.shared.training.progress import TrainingProgress


class TrainingRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: TaskName
    preset: PresetName = "quick"
    model_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                                   description="Registry name; default per task.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Preset fields to change, e.g. epochs.")

    @field_validator("overrides")
    @classmethod
    def _overrides_fit_the_task(cls, overrides: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Refused here, at submission, rather than by the trainer after queueing. The error
        # pydantic raises locates the key (overrides.epochs); a bad task or preset is
        # reported on its own field instead, and then the overrides are not checked.
        if "task" in info.data and "preset" in info.data:
            validate_overrides(info.data["task"], info.data["preset"], overrides)
        return overrides


class TrainingRunRead(BaseModel):
    id: uuid.UUID
    model_name: str
    task: str
    preset: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[Any] = Field(description="Per-epoch records: train_loss, dev metrics, lr, seconds.")
    error: str | None
    model_version: int | None = Field(description="The registered version, once the run succeeded.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: TrainingProgress | None = Field(
        None, description="Inside the current epoch, updated every second or so while the run trains.")
    cancel_requested_at: datetime | None = Field(
        None, description="When a cancel was asked for; a running run stops at its next batch, then reads cancelled.")

    @classmethod
    def from_row(cls, run: TrainingRun, version: int | None) -> TrainingRunRead:
        return cls(
            id=run.id, model_name=run.model_name, task=run.task, preset=run.preset, status=run.status,
            config=run.config, metrics=run.metrics, history=run.history, error=run.error,
            model_version=version, created_at=run.created_at, started_at=run.started_at,
            finished_at=run.finished_at,
            progress=TrainingProgress.model_validate(run.progress) if run.progress else None,
            cancel_requested_at=run.cancel_requested_at,
        )
