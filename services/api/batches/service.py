"""Corpus batches: validate the request, store the batch, wake the driver; cancel; read."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from datetime import timedelta
from functools import partial

from celery import Celery
from pydantic import ValidationError
from sqlalchemy.orm import Session

from seqserve.services.api.errors import ApiError, field_path
from seqserve.shared.batches import repository as batches_repo
from seqserve.shared.batches.formats import Position
from seqserve.shared.batches.schemas import BatchCreate, BatchRead, window_seconds
from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.batch_models import FINAL_BATCH_STATUSES, Batch, BatchStatus, StoredFile
from seqserve.shared.db.session import after_commit
from seqserve.shared.jobs.kinds import JOB_KINDS, batch_key, kinds_for_task, validate_params
from seqserve.shared.queueing import ADVANCE_BATCHES_TASK, MAINTENANCE_QUEUE
from seqserve.shared.registry.refs import InvalidModelRef, parse_model_ref
from seqserve.shared.registry.service import RegistryError, resolve

log = logging.getLogger(__name__)


def _params(kind: str, params: dict) -> dict:
    try:
        return validate_params(kind, params)
    except ValidationError as exc:
        field = field_path(("params", *exc.errors()[0]["loc"]))
        raise ApiError(422, "invalid_params", f"{field}: {exc.errors()[0]['msg']}", field) from exc


def _input_file(session: Session, body: BatchCreate, team: str) -> StoredFile:
    row = batches_repo.get_file(session, body.input_file, team)
    if row is None:
        raise ApiError(404, "file_not_found", f"no file with id {body.input_file}", "input_file")
    if row.purpose != "input":
        raise ApiError(422, "not_an_input_file", "input_file must be an uploaded file, not a batch's output",
                       "input_file")
    if row.format == "conllu" and body.kind != "tag":
        raise ApiError(422, "format_not_supported", "CoNLL-U input is for kind tag", "input_file")
    return row


def _window(body: BatchCreate, settings: Settings) -> int:
    seconds = window_seconds(body.completion_window)
    if not settings.batch_window_min_seconds <= seconds <= settings.batch_window_max_seconds:
        message = (f"completion_window must lie between {settings.batch_window_min_seconds} s and "
                   f"{settings.batch_window_max_seconds} s")
        raise ApiError(422, "invalid_completion_window", message, "completion_window")
    return seconds


def _check_request(session: Session, body: BatchCreate) -> tuple[str, int, int]:
    """(model name, version id, version number) after the kind, model and webhook checks."""
    if body.kind not in JOB_KINDS:
        known = ", ".join(sorted(JOB_KINDS))
        raise ApiError(422, "unknown_kind", f"unknown job kind '{body.kind}'; known kinds: {known}", "kind")
    if body.webhook_url is not None:
        raise ApiError(422, "webhooks_not_supported", "batches do not deliver webhooks yet; poll the batch",
                       "webhook_url")
    try:
        ref = parse_model_ref(body.model)
        version = resolve(session, ref)
    except InvalidModelRef as exc:
        raise ApiError(422, "invalid_model_ref", str(exc), "model") from exc
    except RegistryError as exc:
        raise ApiError(404, "model_not_found", str(exc), "model") from exc
    task = version.model.task
    if body.kind not in kinds_for_task(task):
        served = ", ".join(kinds_for_task(task)) or "none"
        raise ApiError(422, "kind_not_supported", f"model '{ref.name}' is a {task} model; it serves: {served}",
                       "kind")
    return ref.name, version.id, version.version


def _wake_driver(celery: Celery, batch_id: uuid.UUID) -> None:
    """Start validating now rather than at beat's next tick; beat covers a broker that refuses."""
    try:
        celery.send_task(ADVANCE_BATCHES_TASK, kwargs={"batch_id": str(batch_id)}, queue=MAINTENANCE_QUEUE)
    except Exception:  # kombu and redis raise several connection error types
        log.warning("could not wake the batch driver for %s; beat will", batch_id, exc_info=True)


def create(session: Session, celery: Celery, body: BatchCreate, settings: Settings, team: str) -> Batch:
    model_name, version_id, version_number = _check_request(session, body)
    params = _params(body.kind, body.params)
    source = _input_file(session, body, team)
    seconds, now = _window(body, settings), utcnow()
    batch = Batch(
        id=uuid.uuid4(), team=team, kind=body.kind, model_ref=body.model, model_name=model_name,
        model_version_id=version_id, version_number=version_number, params=params,
        batch_key=batch_key(body.kind, params), priority=body.priority, status=BatchStatus.validating.value,
        on_malformed=body.on_malformed, webhook_url=None, input_file_id=source.id, input_format=source.format,
        total=0, completed=0, failed=0, malformed=0, errors=[], resume_at=asdict(Position()), completion_window_seconds=seconds,
        created_at=now, expires_at=now + timedelta(seconds=seconds),
    )
    batches_repo.add_batch(session, batch)
    after_commit(session).add(partial(_wake_driver, celery, batch.id))
    return batch


def get_batch(session: Session, batch_id: uuid.UUID, team: str) -> Batch:
    batch = batches_repo.get_batch(session, batch_id, team)
    if batch is None:  # another team's batch is as good as absent
        raise ApiError(404, "batch_not_found", f"no batch with id {batch_id}", "id")
    return batch


def cancel(session: Session, celery: Celery, batch_id: uuid.UUID, team: str) -> Batch:
    """Queued chunks are cancelled now; running ones finish; the driver then ends it `cancelled`."""
    batch = get_batch(session, batch_id, team)
    if not batches_repo.request_cancel(session, batch_id):
        session.refresh(batch)
        raise ApiError(409, "batch_not_cancellable", f"batch {batch_id} is {batch.status}", "id")
    batches_repo.cancel_chunks(session, batch_id)
    session.refresh(batch)
    after_commit(session).add(partial(_wake_driver, celery, batch.id))
    return batch


def ended(batch: Batch | BatchRead) -> bool:
    return BatchStatus(batch.status) in FINAL_BATCH_STATUSES
