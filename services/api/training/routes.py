"""Training-run routes: start a run on the trainer's queue, follow it."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated

from celery import Celery
from fastapi import APIRouter, Query, Response

from seqserve.services.api.auth import ModelsRead, TrainingWrite
from seqserve.services.api.deps import CeleryDep, SessionDep, SettingsDep
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.services.api.training import service
from seqserve.shared.audit import repository as audit
from seqserve.shared.db.models import RunStatus, TrainingRun
from seqserve.shared.db.session import after_commit
from seqserve.shared.training import DEFAULT_MODEL_NAMES, RUN_TRAINING_TASK, TRAINING_QUEUE
from seqserve.shared.training import repository as runs_repo
from seqserve.shared.training.schemas import TrainingRunCreate, TrainingRunRead

router = APIRouter(prefix="/v1/training-runs", tags=["training"], responses=AUTH_ERRORS)  # every route here needs a key


def _read(session: SessionDep, run: TrainingRun) -> TrainingRunRead:
    version = runs_repo.version_of(session, run.id)
    return TrainingRunRead.from_row(run, version.version if version else None)


def _queue_run(celery: Celery, run_id: uuid.UUID) -> None:
    try:
        celery.send_task(RUN_TRAINING_TASK, args=[str(run_id)], queue=TRAINING_QUEUE)
    except Exception as exc:  # the unit of work withdraws the run
        raise ApiError(503, "broker_unavailable", f"the training queue is unreachable: {exc}", None,
                       headers={"Retry-After": "5"}) from exc


@router.post("", status_code=202, response_model=TrainingRunRead, responses=responses(409))
def start_training_run(body: TrainingRunCreate, response: Response, session: SessionDep, celery: CeleryDep,
                       settings: SettingsDep, principal: TrainingWrite) -> TrainingRunRead:
    """Queue a training run (a `seqserve trainer` process runs it); follow its Location."""
    service.refuse_missing_data(body, settings)
    model_name = body.model_name or DEFAULT_MODEL_NAMES[body.task]
    run = runs_repo.create(session, body.task, body.preset, model_name, body.overrides)
    audit.record(session, principal.key_name, audit.Action.training_started, str(run.id),
                 {"task": body.task, "preset": body.preset, "model_name": model_name})
    after_commit(session).add(partial(_queue_run, celery, run.id), undo=partial(runs_repo.delete, run_id=run.id))
    response.headers["Location"] = f"/v1/training-runs/{run.id}"
    return _read(session, run)


@router.get("", response_model=list[TrainingRunRead])
def list_training_runs(
    session: SessionDep,
    _: ModelsRead,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[TrainingRunRead]:
    """Recent training runs, newest first, with per-epoch history and metrics."""
    runs = runs_repo.list_recent(session, limit, status.value if status else None)
    return [_read(session, run) for run in runs]


@router.get("/{run_id}", response_model=TrainingRunRead, responses=responses(404))
def read_training_run(run_id: uuid.UUID, session: SessionDep, _: ModelsRead) -> TrainingRunRead:
    """One run: status, per-epoch history (loss, dev metrics), final metrics, error, version."""
    run = runs_repo.get(session, run_id)
    if run is None:
        raise ApiError(404, "training_run_not_found", f"no training run with id {run_id}", "id")
    return _read(session, run)


@router.post("/{run_id}/cancel", response_model=TrainingRunRead, responses=responses(404, 409))
def cancel_training_run(run_id: uuid.UUID, session: SessionDep, principal: TrainingWrite) -> TrainingRunRead:
    """Cancel a run: a queued one never starts; a running one stops at its next batch, registering nothing."""
    run = service.cancel(session, run_id)
    audit.record(session, principal.key_name, audit.Action.training_cancelled, str(run.id),
                 {"task": run.task, "model_name": run.model_name, "status": run.status})
    return _read(session, run)
