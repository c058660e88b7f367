"""The batch driver: moves each open corpus batch one step on every beat tick (and once right
after it is created). It is idempotent and resumable: all its state is in the batch row and
its job rows, each step is one transaction holding the batch row locked (SKIP LOCKED: two
drivers never step one batch at once), and a chunk's job row is unique per (batch, first
input), so a step re-run after a crash inserts nothing twice.

validating -> in_progress: the whole file is read once, line by line, a slice of it per step
(bounded by time and inputs: SEQSERVE_BATCH_VALIDATE_STEP_SECONDS and _INPUTS); a malformed
line fails the batch (or, with on_malformed=skip, goes to the error file). Meanwhile the steps
already submit whole chunks of the inputs validated so far, so that a corpus's first passes run
while the rest of its file is read; a malformed line (on_malformed=fail) cancels those at once
and submits no more, and validation reads on to list the file's errors.
in_progress: keeps up to SEQSERVE_BATCH_MAX_CHUNKS_IN_FLIGHT job rows queued or running, each
of the kind's chunk size, at the batch's priority, through the job machinery (claims, leases,
exactly-once writes); counts progress; appends the lines of the chunks that ended to the output
files (seqserve.services.worker.batch_output); once every chunk ended, closes them.
cancelling: queued chunks are cancelled at once (by the API), running ones finish; then the
files are written. Past `expires_at`, open chunks are cancelled and the batch ends expired.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from functools import partial
from typing import Any

from celery import Celery
from redis import Redis
from sqlalchemy.orm import Session

from seqserve.services.worker.batch_output import append, finalize
from seqserve.shared.batches import repository as batches_repo
from seqserve.shared.batches.formats import Item, Limits, Malformed, Position, read
from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.batch_models import FINAL_BATCH_STATUSES, Batch, BatchStatus
from seqserve.shared.db.models import JobStatus
from seqserve.shared.db.session import after_commit, session_scope
from seqserve.shared.notify import JobsFinished, publish_finished
from seqserve.shared.queueing import ADVANCE_BATCHES_TASK, MAINTENANCE_QUEUE, Wakeup, publish_wakeup
from seqserve.shared.storage import FileStore

log = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 20
# Set while a step requested by a chunk's end is queued for the batch, so that the chunks ending
# meanwhile queue no more (the step takes all of them); the step clears it when it starts. It
# lapses on its own should the message be lost: beat's ticks go on regardless.
_STEP_QUEUED = "seqserve:batch-step-queued:{}"
_STEP_QUEUED_SECONDS = 30


def limits_for(batch: Batch, settings: Settings) -> Limits:
    return Limits(max_input_chars=settings.max_input_chars, tokens_allowed=batch.kind == "tag")


def advance_all(celery: Celery, settings: Settings, redis: Redis | None = None) -> int:
    """One step for every open batch; returns how many were looked at."""
    with session_scope() as session:
        ids = batches_repo.open_batch_ids(session)
    for batch_id in ids:
        advance(batch_id, celery, settings, redis)
    return len(ids)


def steps_on_chunk_end(settings: Settings) -> bool:
    """Whether a worker that wrote chunks queues their batches' steps: only one that leaves the
    maintenance queue to another process. On a worker that consumes it too, such steps run
    between its own passes and cost more than they save (docs/benchmarks/batches.md,
    2026-12-03); there beat's ticks and the steps' own follow-ups drive the batch."""
    return settings.batch_step_on_chunk_end and MAINTENANCE_QUEUE not in settings.worker_queues.split(",")


def request_steps(celery: Celery, redis: Redis | None, batch_ids: Iterable[uuid.UUID]) -> None:
    """Chunks of these batches ended: queue a step for each that has none queued yet, so that
    the batch is topped up (and its output appended) without waiting for beat's next tick: the
    in-flight chunks run out sooner than that on a fast model (docs/benchmarks/batches.md).
    Without the broker's Redis client every call queues one. A broker that fails here costs the
    batch only time (beat's next tick steps it), not the sends queued after this one."""
    for batch_id in set(batch_ids):
        try:
            if redis is None or redis.set(_STEP_QUEUED.format(batch_id), 1, nx=True, ex=_STEP_QUEUED_SECONDS):
                celery.send_task(ADVANCE_BATCHES_TASK, kwargs={"batch_id": str(batch_id)}, queue=MAINTENANCE_QUEUE)
        except Exception as exc:
            log.warning("could not queue a step of batch %s (beat's next tick will): %s", batch_id, exc)


def step_started(redis: Redis | None, batch_id: uuid.UUID) -> None:
    """Before a step of one batch reads its rows: the next chunk that ends may queue another."""
    if redis is not None:
        redis.delete(_STEP_QUEUED.format(batch_id))


def advance(batch_id: uuid.UUID, celery: Celery, settings: Settings, redis: Redis | None = None) -> str | None:
    """One step of one batch; its status after it (None: ended, or another driver holds it).
    A step that ends the batch publishes its id on the job-finished channel once committed, so
    that a `GET /v1/batches/{id}` held with `Prefer: wait` answers at once (best effort, as for
    jobs: a lost event costs the waiter its next poll)."""
    with session_scope() as session:
        batch = batches_repo.lock_open(session, batch_id)
        if batch is None:
            return None
        _step(session, batch, celery, settings)
        if BatchStatus(batch.status) in FINAL_BATCH_STATUSES:
            after_commit(session).add(partial(publish_finished, redis, JobsFinished(ids=[str(batch_id)])))
        return batch.status


def _step(session: Session, batch: Batch, celery: Celery, settings: Settings) -> None:
    store = FileStore.from_settings(settings)
    if batch.status != BatchStatus.cancelling.value and utcnow() >= batch.expires_at:
        batches_repo.cancel_chunks(session, batch.id, running_too=True)
        finalize(session, batch, store, limits_for(batch, settings), BatchStatus.expired)
        return
    more = False  # this step stopped at its bound with work left: queue the next one at once
    if batch.status == BatchStatus.validating.value:
        more = _validate(session, batch, store, settings)
        if batch.status == BatchStatus.validating.value and not _failing(batch):
            more = _submit(session, batch, store, celery, settings, validated=batch.total - batch.malformed) or more
            _progress(session, batch)
    if batch.status == BatchStatus.in_progress.value:
        more = _submit(session, batch, store, celery, settings)
        counts = _progress(session, batch)
        if settings.batch_output_as_chunks_end:
            more = append(session, batch, store, limits_for(batch, settings), bound=settings.batch_step_inputs) or more
        if batch.resume_at is None and counts.open_jobs == 0:
            finalize(session, batch, store, limits_for(batch, settings), BatchStatus.completed)
    elif batch.status == BatchStatus.cancelling.value:
        batches_repo.cancel_chunks(session, batch.id)  # any the API's cancel raced with
        counts = _progress(session, batch)
        if counts.jobs.get(JobStatus.running.value, 0) == 0:
            finalize(session, batch, store, limits_for(batch, settings), BatchStatus.cancelled)
    if more:  # on the maintenance queue, which a worker takes after its inference queues
        after_commit(session).add(partial(celery.send_task, ADVANCE_BATCHES_TASK, kwargs={"batch_id": str(batch.id)},
                                          queue=MAINTENANCE_QUEUE))


def _failing(batch: Batch) -> bool:
    """A malformed line was found and fails the batch once validation ends."""
    return bool(batch.malformed) and batch.on_malformed == "fail"


def _validate(session: Session, batch: Batch, store: FileStore, settings: Settings) -> bool:
    """Read the input file once, up to `batch_validate_step_inputs` inputs or
    `batch_validate_step_seconds` a step: count its inputs, list its malformed lines. While
    validating, `validated_to` is where reading goes on and `total`, `malformed` and `errors`
    hold what the steps before found. The first malformed line that fails the batch cancels the
    chunks already submitted. True: more to read."""
    start = Position(**batch.validated_to) if batch.validated_to else Position()
    failing = _failing(batch)
    errors, counted = list(batch.errors), 0
    until = time.monotonic() + settings.batch_validate_step_seconds
    with store.open(batch.input_file_id) as source:
        for entry in read(source, batch.input_format, limits_for(batch, settings), start):
            if isinstance(entry, Item) and counted and (
                    counted == settings.batch_validate_step_inputs or time.monotonic() >= until):
                batch.errors, batch.validated_to = errors, asdict(entry.position)
                return True
            batch.total += 1
            if isinstance(entry, Malformed):
                batch.malformed += 1
                if len(errors) < MAX_LISTED_ERRORS:
                    errors.append({"line": entry.line, "message": entry.message})
                if not failing and _failing(batch):
                    failing = True
                    batches_repo.cancel_chunks(session, batch.id, running_too=True)
            else:
                counted += 1
    _validated(batch, errors)
    return False


def _validated(batch: Batch, errors: list[dict[str, Any]]) -> None:
    now = utcnow()
    batch.errors, valid, batch.validated_to = errors, batch.total - batch.malformed, None
    if _failing(batch) or valid == 0:
        if valid == 0 and not errors:
            batch.errors = [{"line": 0, "message": "the file holds no inputs"}]
        batch.status, batch.failed_at, batch.resume_at = BatchStatus.failed.value, now, None
        batch.completed = batch.failed = 0  # nothing is delivered: what its cancelled chunks computed neither
        return
    batch.failed = batch.malformed
    batch.status, batch.in_progress_at = BatchStatus.in_progress.value, now


def _submit(session: Session, batch: Batch, store: FileStore, celery: Celery, settings: Settings,
            validated: int | None = None) -> bool:
    """Top the batch's open job rows up to the in-flight bound, reading on from `resume_at`,
    at most `batch_step_inputs` inputs (one chunk at least); while validating (`validated`: the
    valid inputs read so far), whole chunks of those only. True: stopped at the step's bound with
    room left."""
    if batch.resume_at is None:
        return False
    room = settings.batch_max_chunks_in_flight - batches_repo.chunk_counts(session, batch.id).open_jobs
    if room <= 0:
        return False
    size = settings.batch_chunk_inputs[batch.kind]
    bound = min(room, max(1, settings.batch_step_inputs // size))
    rows: list[dict[str, Any]] = []
    chunk: list[Item] = []
    following: Item | None = None  # the first input left for a later step
    with store.open(batch.input_file_id) as source:
        for entry in read(source, batch.input_format, limits_for(batch, settings), Position(**batch.resume_at)):
            if not isinstance(entry, Item):
                continue
            if len(rows) == bound or (validated is not None and entry.index >= validated):
                following = chunk[0] if chunk else entry
                break
            chunk.append(entry)
            if len(chunk) == size:
                rows.append(_chunk_row(batch, chunk))
                chunk = []
        else:  # the file's end: its last chunk may be short once the whole file is valid
            if chunk and validated is None:
                rows.append(_chunk_row(batch, chunk))
            elif chunk:
                following = chunk[0]
    batches_repo.insert_chunks(session, rows)
    batch.resume_at = None if following is None else asdict(following.position)
    if rows:
        wakeup = Wakeup(version_id=batch.model_version_id, kind=batch.kind, batch_key=batch.batch_key,
                        priority=batch.priority)
        after_commit(session).add(partial(publish_wakeup, celery, wakeup))
    return following is not None and len(rows) == bound and bound < room


def _chunk_row(batch: Batch, chunk: list[Item]) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": uuid.uuid4(), "kind": batch.kind, "model_name": batch.model_name, "model_ref": batch.model_ref,
        "model_version_id": batch.model_version_id, "version_number": batch.version_number,
        "inputs": [item.input for item in chunk], "params": batch.params, "batch_key": batch.batch_key,
        "priority": batch.priority, "status": JobStatus.queued.value, "attempts": 0, "enqueued_at": now,
        "team": batch.team, "created_at": now, "batch_id": batch.id, "batch_line": chunk[0].index,
    }


def _progress(session: Session, batch: Batch) -> batches_repo.ChunkCounts:
    counts = batches_repo.chunk_counts(session, batch.id)
    batch.completed = counts.inputs.get(JobStatus.succeeded.value, 0)
    batch.failed = batch.malformed + counts.inputs.get(JobStatus.failed.value, 0)
    return counts
