"""Job submission: validate everything before anything is stored, then enqueue."""

from __future__ import annotations

import logging
import uuid

from celery import Celery
from pydantic import ValidationError
from sqlalchemy.orm import Session

from services.api.errors import ApiError, field_path
from shared.config import Settings
from shared.db.models import Job, JobStatus
from shared.jobs import repository as jobs_repo
from shared.jobs.kinds import JOB_KINDS, kinds_for_task, validate_params
from shared.jobs.schemas import JobCreate
from shared.metrics import JOBS_SUBMITTED_TOTAL
from shared.queueing import RUN_JOB_TASK, queue_for
from shared.registry.refs import InvalidModelRef, parse_model_ref
from shared.registry.service import RegistryError, resolve

log = logging.getLogger(__name__)


def _check_kind(kind: str) -> None:
    if kind not in JOB_KINDS:
        known = ", ".join(sorted(JOB_KINDS))
        raise ApiError(422, "unknown_kind", f"unknown job kind '{kind}'; known kinds: {known}", "kind")


def _check_inputs(inputs: list[str], settings: Settings) -> None:
    if not inputs:
        raise ApiError(422, "empty_inputs", "inputs must hold at least one text", "inputs")
    if len(inputs) > settings.max_inputs_per_job:
        raise ApiError(
            422,
            "too_many_inputs",
            f"{len(inputs)} inputs; a job holds at most {settings.max_inputs_per_job}",
            "inputs",
        )
    for index, text in enumerate(inputs):
        if not text.strip():
            raise ApiError(422, "empty_input", "input text is empty", f"inputs[{index}]")
        if len(text) > settings.max_input_chars:
            raise ApiError(
                422,
                "input_too_long",
                f"input is {len(text)} characters; at most {settings.max_input_chars} allowed",
                f"inputs[{index}]",
            )
    total = sum(len(text) for text in inputs)
    if total > settings.max_inputs_total_chars:
        raise ApiError(
            422,
            "inputs_too_large",
            f"inputs hold {total} characters in all; at most {settings.max_inputs_total_chars} allowed",
            "inputs",
        )


def _check_params(kind: str, params: dict) -> dict:
    try:
        return validate_params(kind, params)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(("params", *first["loc"]))
        raise ApiError(422, "invalid_params", f"{field}: {first['msg']}", field) from exc


def create_job(session: Session, body: JobCreate, settings: Settings) -> Job:
    """Validate the request and add the queued job row (flushed, not committed)."""
    _check_kind(body.kind)
    try:
        ref = parse_model_ref(body.model)
    except InvalidModelRef as exc:
        raise ApiError(422, "invalid_model_ref", str(exc), "model") from exc
    _check_inputs(body.inputs, settings)
    params = _check_params(body.kind, body.params)
    try:
        version = resolve(session, ref)
    except RegistryError as exc:
        raise ApiError(404, "model_not_found", str(exc), "model") from exc
    task = version.model.task
    if body.kind not in kinds_for_task(task):
        served = ", ".join(kinds_for_task(task)) or "none"
        message = f"model '{ref.name}' is a {task} model; it serves: {served}"
        raise ApiError(422, "kind_not_supported", message, "kind")
    job = Job(
        kind=body.kind,
        model_name=ref.name,
        model_ref=body.model,
        model_version_id=version.id,
        inputs=body.inputs,
        params=params,
        priority=body.priority,
        status=JobStatus.queued.value,
    )
    return jobs_repo.add(session, job)


def enqueue(session: Session, celery: Celery, job: Job) -> None:
    """Publish the committed job; if the broker refuses, withdraw the job and answer 503."""
    try:
        celery.send_task(RUN_JOB_TASK, args=[str(job.id)], queue=queue_for(job.priority))
    except Exception as exc:  # kombu raises several connection error types
        log.exception("publishing job %s failed", job.id)
        jobs_repo.delete(session, job.id)
        session.commit()
        raise ApiError(503, "broker_unavailable", f"the job queue is unreachable: {exc}", None,
                       headers={"Retry-After": "5"}) from exc
    JOBS_SUBMITTED_TOTAL.labels(job.kind, job.model_name).inc()


def get_job(session: Session, job_id: uuid.UUID) -> Job:
    job = jobs_repo.get(session, job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job with id {job_id}", "id")
    return job
