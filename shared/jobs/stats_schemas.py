"""Response bodies of `/v1/stats`: job counts, latency percentiles, failures, queue depths."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class KindStats(BaseModel):
    """One job kind over the window."""

    finished: int = Field(description="Jobs of this kind that ended in the window, any final status.")
    succeeded: int
    failed: int
    cancelled: int
    throughput_per_second: float = Field(description="`finished` divided by the window length.")
    latency_samples: int = Field(description="Jobs the percentiles were computed from (ran, not cancelled).")
    p50_seconds: float | None = Field(description="Median created -> finished time; null without samples.")
    p95_seconds: float | None
    p99_seconds: float | None


class FailureRead(BaseModel):
    id: uuid.UUID
    kind: str
    model: str = Field(description="Model name.")
    model_version: int | None
    error: str | None
    finished_at: datetime | None


class StatsRead(BaseModel):
    generated_at: datetime
    window_seconds: int
    jobs_by_status: dict[str, int] = Field(description="All jobs stored, every status present (0 when none).")
    finished_in_window: int
    throughput_per_second: float = Field(description="Jobs that ended in the window, per second.")
    by_kind: dict[str, KindStats]
    recent_failures: list[FailureRead] = Field(description="The last failed jobs, newest first.")
    queue_depth: dict[str, int] | None = Field(
        description="Per queue: jobs waiting on the inference queues (canaries and wake-ups are not counted), messages "
                    "waiting on the others; null when the broker did not answer.")
    queue_depth_error: str | None = Field(description="Why `queue_depth` is null.")
