"""The queue report's shape (GET /v1/queues)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class QueueConsumer(BaseModel):
    worker: str = Field(description="The worker's Celery node name.")
    seen_at: datetime = Field(description="When it last vouched for consuming the queue.")


class QueueCanary(BaseModel):
    ok: bool = Field(description="A worker ran beat's canary within SEQSERVE_READINESS_WINDOW_SECONDS.")
    last_consumed_at: datetime | None
    worker: str | None


class QueueRead(BaseModel):
    ok: bool = Field(description="At least one live consumer (the canary where the broker keeps no registry).")
    consumers: list[QueueConsumer] | None = Field(description="None when the broker keeps no consumer registry.")
    depth: int | None = Field(description="Broker messages waiting (wake-ups and beat's canaries, not jobs); "
                                          "None when the broker does not answer.")
    jobs_queued: int = Field(description="Jobs of this queue's priority waiting to run (the job table is the queue).")
    canary: QueueCanary


class QueuesRead(BaseModel):
    ok: bool = Field(description="Every inference queue has a consumer.")
    queues: dict[str, QueueRead]
