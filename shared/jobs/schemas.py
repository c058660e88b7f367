"""Job request and response bodies."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from sqlalchemy import Row

from seqserve.shared.db.models import Job
from seqserve.shared.jobs.params_doc import add_params_by_kind
from seqserve.shared.notify import FinalState
from seqserve.shared.validation import IsoDatetime, StrictText, storable

Priority = Literal["high", "normal", "low"]
# The URL parser would drop a NUL silently: refuse it as written.
WebhookUrl = Annotated[AnyHttpUrl, BeforeValidator(lambda value: storable(value) if isinstance(value, str) else value)]
# Whitespace-only texts are refused too: the pattern is a search for one non-space.
InputText = Annotated[StrictText, Field(min_length=1, pattern=r"\S")]


class JobCreate(BaseModel):
    """A job: one kind, one model reference, one or many inputs."""

    model_config = ConfigDict(extra="forbid")

    kind: StrictText = Field(min_length=1, max_length=64, description="Job kind, for example 'classify'.")
    model: StrictText = Field(min_length=1, max_length=256,
                              description="'name' (its production alias), 'name@alias' or 'name:version'.")
    inputs: list[InputText] = Field(min_length=1, description="Texts; one result entry per input, in order.")
    params: dict[StrictText, Any] = Field(
        default_factory=dict, json_schema_extra=add_params_by_kind,
        description="Options for the kind (`x-params-by-kind`: each kind's, with their defaults); unknown keys are refused.")
    priority: Priority = Field("normal", description="high, normal or low: separate queues.")
    webhook_url: WebhookUrl | None = Field(
        None, description="POSTed the final job state, signed; internal addresses are refused.")
    expires_at: IsoDatetime | None = Field(
        None, description="If still queued at this time the job ends `expired` and never runs.")
    max_queue_seconds: float | None = Field(
        None, gt=0, strict=True, description="As expires_at, counted from submission (SEQSERVE_MAX_QUEUE_SECONDS at most).")
    stream: StrictBool = Field(False, description="Answer with the job's server-sent events (as GET /v1/jobs/{id}/events).")


class JobTimings(BaseModel):
    queue_seconds: float | None = None
    run_seconds: float | None = None
    total_seconds: float | None = None


_COLUMNS = ("id", "kind", "model_ref", "model_name", "version_number", "status", "priority", "inputs", "params",
            "result", "error", "attempts", "webhook_url", "webhook_status", "created_at", "started_at", "finished_at",
            "expires_at", "purged_at", "batch_id")


class JobRead(BaseModel):
    id: uuid.UUID
    kind: str
    model: str = Field(description="The reference as submitted.")
    model_name: str
    model_version: int
    status: str
    priority: str
    num_inputs: int
    params: dict[str, Any]
    result: list[Any] | None
    error: str | None
    attempts: int
    webhook_url: str | None
    webhook_status: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: JobTimings
    expires_at: datetime | None = Field(None, description="Its deadline in the queue, if it has one.")
    purged_at: datetime | None = Field(
        None, description="When retention purged its inputs and result (then null; num_inputs stays).")
    batch_id: uuid.UUID | None = Field(None, description="The corpus batch this job is a chunk of; null: submitted "
                                                         "as a job.")

    @classmethod
    def from_row(cls, job: Job | Row[Any]) -> JobRead:
        """From an ORM job or a row of the job table's columns."""
        return cls.from_values({name: getattr(job, name) for name in _COLUMNS})

    @classmethod
    def from_values(cls, job: Mapping[str, Any]) -> JobRead:
        """From the job table's column values by name (e.g. the row just inserted)."""
        return cls(
            id=job["id"],
            kind=job["kind"],
            model=job["model_ref"],
            model_name=job["model_name"],
            model_version=job["version_number"],
            status=job["status"],
            priority=job["priority"],
            num_inputs=len(job["inputs"]),
            params=job["params"],
            result=job["result"],
            error=job["error"],
            attempts=job["attempts"],
            webhook_url=job["webhook_url"],
            webhook_status=job["webhook_status"],
            created_at=job["created_at"],
            started_at=job["started_at"],
            finished_at=job["finished_at"],
            timings=_timings(job["created_at"], job["started_at"], job["finished_at"]),
            expires_at=job.get("expires_at"),
            purged_at=job.get("purged_at"),
            batch_id=job.get("batch_id"),
        )

    def with_final_state(self, state: FinalState) -> JobRead:
        """This job as a job-finished event describes it (see seqserve.shared.notify)."""
        return self.model_copy(update={
            "status": state.status, "result": state.result, "error": state.error, "attempts": state.attempts,
            "started_at": state.started_at, "finished_at": state.finished_at,
            "timings": _timings(self.created_at, state.started_at, state.finished_at),
        })


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 6)


def _timings(created: datetime, started: datetime | None, finished: datetime | None) -> JobTimings:
    return JobTimings(
        queue_seconds=_seconds(created, started),
        run_seconds=_seconds(started, finished),
        total_seconds=_seconds(created, finished),
    )


class JobPage(BaseModel):
    items: list[JobRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")
