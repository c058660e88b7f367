"""Training-run rules the routes apply: data present before a run exists, cancellation."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from seqserve.services.api.errors import ApiError
from seqserve.shared.config import Settings
from seqserve.shared.db.models import RunStatus, TrainingRun
from seqserve.shared.training import repository as runs_repo
from seqserve.shared.training.data_files import MissingDataError, check_data
from seqserve.shared.training.presets import resolve_config
from seqserve.shared.training.schemas import TrainingRunCreate

FINAL_RUN_STATUSES = frozenset({RunStatus.succeeded.value, RunStatus.failed.value, RunStatus.cancelled.value})


def refuse_missing_data(body: TrainingRunCreate, settings: Settings) -> None:
    """409 naming the absent file, before any row exists, where this process sees the datasets."""
    if not settings.api_checks_training_data or settings.data_dir is None:
        return
    try:
        check_data(body.task, resolve_config(body.task, body.preset, body.overrides), settings.data_dir)
    except MissingDataError as exc:
        # The override that named the file, if one did; else the task's own data.
        field = next((f"overrides.{key}" for key, value in body.overrides.items()
                      if isinstance(value, str) and value and str(exc.path).endswith(value.lstrip("./"))), "task")
        raise ApiError(409, "training_data_missing", str(exc), field) from exc


def cancel(session: Session, run_id: uuid.UUID) -> TrainingRun:
    """Queued: cancelled now. Running: the trainer stops at its next batch. Finished: 409."""
    run = runs_repo.get_locked(session, run_id)
    if run is None:
        raise ApiError(404, "training_run_not_found", f"no training run with id {run_id}", "id")
    if run.status in FINAL_RUN_STATUSES:
        raise ApiError(409, "training_run_finished", f"training run {run_id} already {run.status}", "id")
    runs_repo.request_cancel(session, run)
    return run
