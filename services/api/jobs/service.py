"""Job submission and life cycle: validate everything before anything is stored, then enqueue."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from celery import Celery
from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from seqserve.services.api.errors import ApiError, field_path
from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Job, JobStatus
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs.kinds import JOB_KINDS, batch_key, kinds_for_task, validate_params
from seqserve.shared.jobs.schemas import JobCreate, JobRead
from seqserve.shared.metrics import JOBS_REJECTED_TOTAL, JOBS_SUBMITTED_TOTAL
from seqserve.shared.notify import publish_finished
from seqserve.shared.queueing import TriggerGate, publish_job, publish_webhook, queue_for, trigger_gate
from seqserve.shared.registry.refs import InvalidModelRef, ModelRef, parse_model_ref
from seqserve.shared.registry.service import RegistryError, resolve

log = logging.getLogger(__name__)


def _reject(status: int, code: str, message: str, field: str | None, headers: dict[str, str] | None = None) -> ApiError:
    JOBS_REJECTED_TOTAL.labels(code).inc()
    return ApiError(status, code, message, field, headers)


def _check_kind(kind: str) -> None:
    if kind not in JOB_KINDS:
        known = ", ".join(sorted(JOB_KINDS))
        raise _reject(422, "unknown_kind", f"unknown job kind '{kind}'; known kinds: {known}", "kind")


def _check_inputs(inputs: list[str], settings: Settings) -> None:
    if not inputs:
        raise _reject(422, "empty_inputs", "inputs must hold at least one text", "inputs")
    if len(inputs) > settings.max_inputs_per_job:
        message = f"{len(inputs)} inputs; a job holds at most {settings.max_inputs_per_job}"
        raise _reject(422, "too_many_inputs", message, "inputs")
    for index, text in enumerate(inputs):
        if not text.strip():
            raise _reject(422, "empty_input", "input text is empty", f"inputs[{index}]")
        if len(text) > settings.max_input_chars:
            message = f"input is {len(text)} characters; at most {settings.max_input_chars} allowed"
            raise _reject(422, "input_too_long", message, f"inputs[{index}]")
    total = sum(len(text) for text in inputs)
    if total > settings.max_inputs_total_chars:
        message = f"inputs hold {total} characters in all; at most {settings.max_inputs_total_chars} allowed"
        raise _reject(422, "inputs_too_large", message, "inputs")


def _check_params(kind: str, params: dict) -> dict:
    try:
        return validate_params(kind, params)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(("params", *first["loc"]))
        raise _reject(422, "invalid_params", f"{field}: {first['msg']}", field) from exc


def _check_webhook(body: JobCreate, settings: Settings) -> None:
    if body.webhook_url is not None and not settings.webhook_secret:
        message = "webhooks are disabled on this server (no SEQSERVE_WEBHOOK_SECRET)"
        raise _reject(422, "webhooks_disabled", message, "webhook_url")


_depth_cache: dict[str, tuple[float, int]] = {}


def _check_backpressure(session: Session, priority: str, settings: Settings) -> None:
    """503 past the configured number of queued jobs of this priority (counted in the job
    table, the source of truth: with coalesced triggers the broker holds far fewer messages;
    cached for 0.5 s per process)."""
    cached = _depth_cache.get(priority)
    if cached is None or time.monotonic() - cached[0] > 0.5:
        cached = (time.monotonic(), jobs_repo.count_queued(session, priority))
        _depth_cache[priority] = cached
    if cached[1] >= settings.max_queue_depth:
        queue = queue_for(priority)
        message = f"queue {queue} holds {cached[1]} jobs (limit {settings.max_queue_depth}); retry later"
        raise _reject(503, "queue_full", message, None, headers={"Retry-After": "5"})


def request_hash(body: JobCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_replay(session: Session, key: str | None, body_hash: str) -> Job | None:
    """The job an Idempotency-Key already created; 409 if it was created by another body."""
    if key is None:
        return None
    job = jobs_repo.get_by_idempotency_key(session, key)
    if job is not None and job.request_hash != body_hash:
        message = "this Idempotency-Key was used with a different request body"
        raise _reject(409, "idempotency_conflict", message, "Idempotency-Key")
    return job


@dataclass(frozen=True)
class _Resolved:
    version_id: int
    number: int
    task: str


# ref -> (resolved at, version). Resolving costs three queries per submission; an alias move
# reaches new jobs within `alias_cache_seconds` (1 s by default).
_resolved: dict[str, tuple[float, _Resolved]] = {}


def _resolve(session: Session, ref: ModelRef, settings: Settings) -> _Resolved:
    key, now = str(ref), time.monotonic()
    cached = _resolved.get(key)
    if cached is not None and now - cached[0] < settings.alias_cache_seconds:
        return cached[1]
    try:
        version = resolve(session, ref)
    except RegistryError as exc:
        raise _reject(404, "model_not_found", str(exc), "model") from exc
    found = _Resolved(version.id, version.version, version.model.task)
    _resolved[key] = (now, found)
    return found


def forget_resolutions() -> None:
    """Drop cached references (this process moved an alias: make it effective at once)."""
    _resolved.clear()


def _validated_job(session: Session, body: JobCreate, settings: Settings, job_id: uuid.UUID) -> dict[str, Any]:
    """Every column of the new job row, after every check."""
    _check_kind(body.kind)
    try:
        ref = parse_model_ref(body.model)
    except InvalidModelRef as exc:
        raise _reject(422, "invalid_model_ref", str(exc), "model") from exc
    _check_inputs(body.inputs, settings)
    params = _check_params(body.kind, body.params)
    _check_webhook(body, settings)
    version = _resolve(session, ref, settings)
    task = version.task
    if body.kind not in kinds_for_task(task):
        served = ", ".join(kinds_for_task(task)) or "none"
        raise _reject(422, "kind_not_supported", f"model '{ref.name}' is a {task} model; it serves: {served}", "kind")
    _check_backpressure(session, body.priority, settings)
    now = utcnow()
    return {
        "id": job_id, "kind": body.kind, "model_name": ref.name, "model_ref": body.model,
        "model_version_id": version.version_id, "version_number": version.number, "inputs": body.inputs,
        "params": params, "batch_key": batch_key(body.kind, params), "priority": body.priority,
        "status": JobStatus.queued.value, "result": None, "error": None, "attempts": 0, "lease_expires_at": None,
        "enqueued_at": now, "idempotency_key": None, "request_hash": None,
        "webhook_url": str(body.webhook_url) if body.webhook_url else None, "webhook_status": None,
        "created_at": now, "started_at": None, "finished_at": None,
    }


def _publish(session: Session, celery: Celery, settings: Settings, row: dict[str, Any]) -> None:
    """Publish the committed job (or let it ride on its group's pending trigger); if the
    broker refuses, withdraw the job and answer 503."""
    job_id, priority = str(row["id"]), row["priority"]
    gate = trigger_gate(settings)
    key = TriggerGate.key(row["model_version_id"], row["kind"], row["batch_key"], priority) if gate else None
    try:
        if gate is None:
            publish_job(celery, job_id, priority)
        else:
            gate.publish_if_first(key, job_id, priority)  # type: ignore[arg-type]
    except Exception as exc:  # kombu and redis raise several connection error types
        log.exception("publishing job %s failed", job_id)
        jobs_repo.delete(session, row["id"])
        session.commit()
        raise _reject(503, "broker_unavailable", f"the job queue is unreachable: {exc}", None,
                      headers={"Retry-After": "5"}) from exc
    JOBS_SUBMITTED_TOTAL.labels(row["kind"], row["model_name"]).inc()


def submit(celery: Celery, body: JobCreate, settings: Settings, key: str | None, job_id: uuid.UUID
           ) -> tuple[JobRead, bool]:
    """Validate, insert (committed by itself) and queue a job, no ORM unit of work. Returns
    (job, replayed): a replay is the job an earlier request with the same
    Idempotency-Key and body created, returned as it is now."""
    body_hash = request_hash(body) if key is not None else None
    # Autocommit: the INSERT is the only write and commits by itself (no BEGIN/COMMIT round
    # trips); the idempotency key's unique index decides a race, not a transaction.
    with session_scope(autocommit=True) as session:
        replay = find_replay(session, key, body_hash)
        if replay is not None:
            return JobRead.from_row(replay), True
        row = _validated_job(session, body, settings, job_id)
        row["idempotency_key"], row["request_hash"] = key, body_hash
        try:
            session.execute(insert(Job.__table__), [row])  # committed before its message is published
        except IntegrityError:
            # A concurrent request with the same key won the insert.
            session.rollback()
            replay = find_replay(session, key, body_hash)
            if replay is None:
                raise
            return JobRead.from_row(replay), True
        _publish(session, celery, settings, row)
    return JobRead.from_row(SimpleNamespace(**row)), False


def read(job_id: uuid.UUID) -> JobRead | None:
    """The job as it is now, in one query."""
    with session_scope() as session:
        row = jobs_repo.get_row(session, job_id)
    return None if row is None else JobRead.from_row(row)


def get_job(session: Session, job_id: uuid.UUID) -> Job:
    job = jobs_repo.get(session, job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job with id {job_id}", "id")
    return job


def cancel_job(session: Session, celery: Celery, settings: Settings, job_id: uuid.UUID) -> Job:
    """A queued job never runs; a running job's result is discarded. Both end `cancelled`."""
    job = get_job(session, job_id)
    if not jobs_repo.cancel(session, job_id):
        raise ApiError(409, "job_finished", f"job {job_id} already ended {job.status}", "id")
    session.commit()
    session.refresh(job)
    publish_finished(settings, [str(job_id)])
    if job.webhook_url:
        publish_webhook(celery, str(job_id))
    return job
