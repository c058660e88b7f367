"""Job submission and life cycle: validate everything before anything is stored, then enqueue."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery import Celery
from pydantic import ValidationError
from redis import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from seqserve.services.api.caches import ApiCaches, Resolved
from seqserve.services.api.errors import ApiError, field_path
from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Job, JobStatus
from seqserve.shared.db.session import after_commit, session_scope
from seqserve.shared.jobs import lifecycle
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs.kinds import JOB_KINDS, batch_key, kinds_for_task, validate_params
from seqserve.shared.jobs.schemas import JobCreate, JobRead
from seqserve.shared.metrics import JOBS_REJECTED_TOTAL, JOBS_SUBMITTED_TOTAL
from seqserve.shared.notify import JobsFinished, publish_finished
from seqserve.shared.queueing import Wakeup, publish_wakeup, publish_webhook, queue_for
from seqserve.shared.registry.hints import not_found_message
from seqserve.shared.registry.refs import InvalidModelRef, ModelRef, parse_model_ref
from seqserve.shared.registry.service import RegistryError, resolve
from seqserve.shared.rollouts.routing import Route, record_shadow, route
from seqserve.shared.webhook_targets import RefusedTarget, check_url, parse_networks

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
    if body.webhook_url is None:
        return
    if not settings.webhook_secret:
        message = "webhooks are disabled on this server (no SEQSERVE_WEBHOOK_SECRET)"
        raise _reject(422, "webhooks_disabled", message, "webhook_url")
    try:
        check_url(str(body.webhook_url), parse_networks(settings.webhook_allow_networks))
    except RefusedTarget as exc:
        raise _reject(422, "webhook_url_refused", f"webhook_url refused: {exc}", "webhook_url") from exc


def _check_backpressure(session: Session, caches: ApiCaches, priority: str, settings: Settings) -> None:
    """503 past the configured number of queued jobs of this priority (counted in the job
    table, the source of truth: one wake-up can run a whole group)."""
    depth = caches.queue_depths.get(priority, 0.5, lambda: jobs_repo.count_queued(session, priority))
    if depth >= settings.max_queue_depth:
        message = f"queue {queue_for(priority)} holds {depth} jobs (limit {settings.max_queue_depth}); retry later"
        raise _reject(503, "queue_full", message, None, headers={"Retry-After": "5"})


def request_hash(body: JobCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_replay(session: Session, team: str, key: str | None, body_hash: str | None) -> Job | None:
    """The job this team's Idempotency-Key already created; 409 if it was created by another body."""
    if key is None:
        return None
    job = jobs_repo.get_by_idempotency_key(session, team, key)
    if job is not None and job.request_hash != body_hash:
        message = "this Idempotency-Key was used with a different request body"
        raise _reject(409, "idempotency_conflict", message, "Idempotency-Key")
    return job


def _resolve(session: Session, caches: ApiCaches, ref: ModelRef, kind: str, settings: Settings) -> Resolved:
    def lookup() -> Resolved:
        try:
            version = resolve(session, ref)
        except RegistryError as exc:
            raise _reject(404, "model_not_found", not_found_message(session, str(exc), kind), "model") from exc
        return Resolved(version.id, version.version, version.model.task)

    return caches.resolutions.get(str(ref), settings.alias_cache_seconds, lookup)


def _validated_job(session: Session, caches: ApiCaches, body: JobCreate, settings: Settings, job_id: uuid.UUID,
                   sticky_key: str) -> tuple[dict[str, Any], Route]:
    """Every column of the new job row, after every check, and its rollout route."""
    _check_kind(body.kind)
    try:
        ref = parse_model_ref(body.model)
    except InvalidModelRef as exc:
        raise _reject(422, "invalid_model_ref", str(exc), "model") from exc
    _check_inputs(body.inputs, settings)
    params = _check_params(body.kind, body.params)
    _check_webhook(body, settings)
    version = _resolve(session, caches, ref, body.kind, settings)
    task = version.task
    if body.kind not in kinds_for_task(task):
        served = ", ".join(kinds_for_task(task)) or "none"
        raise _reject(422, "kind_not_supported", f"model '{ref.name}' is a {task} model; it serves: {served}", "kind")
    _check_backpressure(session, caches, body.priority, settings)
    chosen = route(session, caches.rollouts, settings.alias_cache_seconds, ref, version.version_id, version.number,
                   job_id, body.kind, sticky_key)
    now = utcnow()
    try:
        expires_at = lifecycle.deadline(body.expires_at, body.max_queue_seconds, now, settings)
    except lifecycle.DeadlineError as exc:
        raise _reject(422, "invalid_deadline", str(exc), exc.field) from exc
    return {
        "id": job_id, "kind": body.kind, "model_name": ref.name, "model_ref": body.model,
        "model_version_id": chosen.version_id, "version_number": chosen.number, "inputs": body.inputs,
        "params": params, "batch_key": batch_key(body.kind, params), "priority": body.priority,
        "status": JobStatus.queued.value, "result": None, "error": None, "attempts": 0, "lease_expires_at": None,
        "enqueued_at": now, "idempotency_key": None, "request_hash": None,
        "webhook_url": str(body.webhook_url) if body.webhook_url else None, "webhook_status": None,
        "created_at": now, "started_at": None, "finished_at": None, "expires_at": expires_at, "purged_at": None,
    }, chosen


@dataclass(frozen=True)
class JobQueue:
    """Where submitted jobs are announced."""

    celery: Celery
    redis: Redis | None  # the broker's Redis, for the direct publish and job-finished events


def _publish(queue: JobQueue, rows: list[dict[str, Any]]) -> None:
    """One wake-up per batch group of the committed rows (a worker drains the whole group);
    a broker that refuses answers 503 to every request of them (the unit of work then
    withdraws the jobs)."""
    wakeups = {Wakeup(version_id=row["model_version_id"], kind=row["kind"], batch_key=row["batch_key"],
                      priority=row["priority"]) for row in rows}
    try:
        for wakeup in wakeups:
            publish_wakeup(queue.celery, wakeup, queue.redis)
    except Exception as exc:  # kombu and redis raise several connection error types
        log.exception("publishing %d jobs failed", len(rows))
        raise _reject(503, "broker_unavailable", f"the job queue is unreachable: {exc}", None,
                      headers={"Retry-After": "5"}) from exc
    for row in rows:
        JOBS_SUBMITTED_TOTAL.labels(row["kind"], row["model_name"]).inc()


def _delete_group(session: Session, job_ids: list[uuid.UUID]) -> None:
    for job_id in job_ids:
        jobs_repo.delete(session, job_id)


def prepare(session: Session, caches: ApiCaches, body: JobCreate, settings: Settings, job_id: uuid.UUID, team: str,
            routing_key: str | None = None) -> tuple[dict[str, Any], Route]:
    """Every column of a new job without an Idempotency-Key, after every check (nothing stored)."""
    row, chosen = _validated_job(session, caches, body, settings, job_id, routing_key or str(job_id))
    row["idempotency_key"], row["request_hash"], row["team"] = None, None, team
    return row, chosen


def _insert(session: Session, prepared: list[tuple[dict[str, Any], Route]]) -> None:
    """Insert the rows in one statement; a job sampled for a shadow goes in with its shadow
    run, in one transaction of their own, so a claim that sees the job also sees that it is
    shadowed (the worker looks for shadow work only for such jobs)."""
    plain = [row for row, chosen in prepared if chosen.shadow_version_id is None]
    shadowed = [(row, chosen) for row, chosen in prepared if chosen.shadow_version_id is not None]
    if plain:
        jobs_repo.insert_rows(session, plain)
    if shadowed:
        with session_scope() as together:
            jobs_repo.insert_rows(together, [row for row, _ in shadowed])
            for row, chosen in shadowed:
                record_shadow(together, row["id"], row["kind"], chosen)


def insert_group(session: Session, queue: JobQueue, prepared: list[tuple[dict[str, Any], Route]]) -> None:
    """Insert prepared jobs (autocommit: committed at once) and queue one wake-up per batch
    group for after the commit; a refused publish withdraws them all."""
    rows = [row for row, _ in prepared]
    _insert(session, prepared)
    ids = [row["id"] for row in rows]
    after_commit(session).add(partial(_publish, queue, rows), undo=partial(_delete_group, job_ids=ids))


def submit(session: Session, queue: JobQueue, caches: ApiCaches, body: JobCreate, settings: Settings,
           key: str | None, job_id: uuid.UUID, team: str, routing_key: str | None = None) -> tuple[JobRead, bool]:
    """Validate and insert a job, its wake-up queued for after the commit. Returns (job,
    replayed): a replay is the job an earlier request with the same Idempotency-Key and
    body created, returned as it is now. The idempotency key's unique index decides a race."""
    body_hash = request_hash(body) if key is not None else None
    replay = find_replay(session, team, key, body_hash)
    if replay is not None:
        return JobRead.from_row(replay), True
    row, chosen = _validated_job(session, caches, body, settings, job_id, routing_key or key or str(job_id))
    row["idempotency_key"], row["request_hash"], row["team"] = key, body_hash, team
    try:
        _insert(session, [(row, chosen)])
    except IntegrityError:
        # A concurrent request with the same key won the insert (autocommit: nothing to undo).
        replay = find_replay(session, team, key, body_hash)
        if replay is None:
            raise
        return JobRead.from_row(replay), True
    after_commit(session).add(partial(_publish, queue, [row]), undo=partial(jobs_repo.delete, job_id=job_id))
    return JobRead.from_values(row), False


def read(session: Session, job_id: uuid.UUID, team: str) -> JobRead | None:
    """The team's job as it is now, in one query (another team's job reads as none)."""
    row = jobs_repo.get_row(session, job_id, team)
    return None if row is None else JobRead.from_row(row)


def get_job(session: Session, job_id: uuid.UUID, team: str) -> Job:
    job = jobs_repo.get(session, job_id)
    if job is None or job.team != team:  # another team's job is as good as absent
        raise ApiError(404, "job_not_found", f"no job with id {job_id}", "id")
    return job


def cancel_job(session: Session, queue: JobQueue, job_id: uuid.UUID, team: str) -> Job:
    """A queued job never runs; a running job's result is discarded. Both end `cancelled`;
    waiters and the webhook hear of it once that is committed."""
    job = get_job(session, job_id, team)
    if not jobs_repo.cancel(session, job_id):
        raise ApiError(409, "job_finished", f"job {job_id} already ended {job.status}", "id")
    session.refresh(job)
    publisher = after_commit(session)
    publisher.add(partial(publish_finished, queue.redis, JobsFinished(ids=[str(job_id)])))
    if job.webhook_url:
        publisher.add(partial(publish_webhook, queue.celery, str(job_id)))
    return job
