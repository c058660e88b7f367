"""Job request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StrictStr

from seqserve.shared.db.models import Job

Priority = Literal["high", "normal", "low"]


class JobCreate(BaseModel):
    """A job: one kind, one model reference, one or many inputs."""

    model_config = ConfigDict(extra="forbid")

    kind: StrictStr = Field(description="Job kind, for example 'classify'.")
    model: StrictStr = Field(description="'name' (its production alias), 'name@alias' or 'name:version'.")
    inputs: list[StrictStr] = Field(description="Texts; one result entry per input, in order.")
    params: dict[str, Any] = Field(default_factory=dict, description="Options for the kind.")
    priority: Priority = Field("normal", description="high, normal or low: separate queues.")
    webhook_url: AnyHttpUrl | None = Field(None, description="POSTed the final job state, signed.")


class JobTimings(BaseModel):
    queue_seconds: float | None = None
    run_seconds: float | None = None
    total_seconds: float | None = None


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

    @classmethod
    def from_row(cls, job: Job) -> "JobRead":
        return cls(
            id=job.id,
            kind=job.kind,
            model=job.model_ref,
            model_name=job.model_name,
            model_version=job.version_number,
            status=job.status,
            priority=job.priority,
            num_inputs=len(job.inputs),
            params=job.params,
            result=job.result,
            error=job.error,
            attempts=job.attempts,
            webhook_url=job.webhook_url,
            webhook_status=job.webhook_status,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            timings=_timings(job.created_at, job.started_at, job.finished_at),
        )

    def with_final_state(self, state: dict[str, Any]) -> "JobRead":
        """This job as a job-finished event describes it (see seqserve.shared.notify)."""
        started = datetime.fromisoformat(state["started_at"]) if state.get("started_at") else None
        finished = datetime.fromisoformat(state["finished_at"]) if state.get("finished_at") else None
        return self.model_copy(update={
            "status": state["status"], "result": state.get("result"), "error": state.get("error"),
            "attempts": state.get("attempts", self.attempts), "started_at": started, "finished_at": finished,
            "timings": _timings(self.created_at, started, finished),
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
