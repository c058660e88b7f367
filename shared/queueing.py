"""The Celery app as both sides see it: the API publishes by task name, the worker consumes.

Only names travel in messages (a batch group, a job id); the job rows are the source of
truth, so no result backend.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid

from celery import Celery
from kombu import Queue
from pydantic import BaseModel, ConfigDict
from redis import Redis

from seqserve.shared import broker_files
from seqserve.shared.config import Settings, get_settings
from seqserve.shared.jobs.repository import BatchGroup

RUN_BATCHES_TASK = "seqserve.jobs.run_batches"
DELIVER_WEBHOOK_TASK = "seqserve.webhooks.deliver"
RECONCILE_TASK = "seqserve.jobs.reconcile"
CANARY_TASK = "seqserve.queues.canary"
ADVANCE_BATCHES_TASK = "seqserve.batches.advance"  # the corpus batch driver, on the maintenance queue

PRIORITY_QUEUES = {"high": "inference.high", "normal": "inference.normal", "low": "inference.low"}
INFERENCE_QUEUES = tuple(PRIORITY_QUEUES.values())
WEBHOOK_QUEUE = "webhooks"
MAINTENANCE_QUEUE = "maintenance"
TRAINING_QUEUE = "training"  # consumed only by `seqserve trainer`
ALL_QUEUES = (*INFERENCE_QUEUES, WEBHOOK_QUEUE, MAINTENANCE_QUEUE, TRAINING_QUEUE)


def queue_for(priority: str) -> str:
    return PRIORITY_QUEUES[priority]


def _transport_options(settings: Settings) -> dict[str, object]:
    if settings.broker_url.startswith("filesystem://"):
        folder = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": settings.broker_poll_seconds,
        }
    # Redis: a message not acked within this many seconds is delivered again, so it must
    # exceed the longest job.
    # queue_order_strategy "priority": a worker drains the queues in the order given to -Q
    # (inference.high first) instead of round-robin.
    return {
        "visibility_timeout": max(3600, int(settings.job_lease_seconds * 2)),
        "queue_order_strategy": "priority",
    }


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("seqserve", broker=settings.broker_url)
    if settings.broker_url.startswith("filesystem://"):
        app.conf.broker_transport = broker_files.TRANSPORT  # an atomic put (shared/broker_files.py)
    app.conf.update(
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=PRIORITY_QUEUES["normal"],
        task_queues=[Queue(name) for name in ALL_QUEUES],
        worker_hijack_root_logger=False,
    )
    return app


class Wakeup(BaseModel):
    """The run message: wake a worker for one batch group (model version, kind, batch key);
    it claims batches of the group until none is left (a wake-up that finds its group empty
    costs one claim). `priority`: the queue it travels on. `recover`: first put the group's
    jobs whose lease lapsed (their worker died) back in the queue."""

    model_config = ConfigDict(frozen=True)

    version_id: int
    kind: str
    batch_key: str
    priority: str
    recover: bool = False

    @property
    def group(self) -> BatchGroup:
        return BatchGroup(self.version_id, self.kind, self.batch_key)


def publish_wakeup(celery: Celery, wakeup: Wakeup, redis: Redis | None = None) -> None:
    """Queue a wake-up; raises when the broker is unreachable. With the broker's Redis client
    the message goes straight onto the queue's list (`wakeup_message`), else through Celery."""
    queue = queue_for(wakeup.priority)
    if redis is not None:
        redis.lpush(queue, wakeup_message(wakeup, queue))
        return
    celery.send_task(RUN_BATCHES_TASK, kwargs=wakeup.model_dump(), queue=queue, retry=True,
                     retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2})


_ORIGIN = f"seqserve@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def wakeup_message(wakeup: Wakeup, queue: str) -> str:
    """The wake-up exactly as `celery.send_task` would queue it on kombu's Redis transport (a
    JSON envelope around a Celery protocol-2 message, priority 0: the queue's own list),
    without Celery's per-message machinery: 74 us of CPU per message against 345-401 us for
    `send_task` (docs/benchmarks/job-path.md). A test compares it with what kombu queues."""
    task_id = str(uuid.uuid4())
    kwargs = wakeup.model_dump()
    body = json.dumps([[], kwargs, _EMBED]).encode()
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": RUN_BATCHES_TASK, "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
            "parent_id": None, "argsrepr": "()", "kwargsrepr": repr(kwargs), "origin": _ORIGIN,
            "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": None, "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0, "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })


def broker_redis_url(settings: Settings) -> str | None:
    """The broker's URL when it is Redis (None for the filesystem broker)."""
    url = settings.broker_url
    return url if url.startswith(("redis://", "rediss://")) else None


def broker_redis(settings: Settings) -> Redis | None:
    """A client (its own connection pool) for the broker's Redis; None for other brokers."""
    url = broker_redis_url(settings)
    return None if url is None else Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def publish_webhook(celery: Celery, job_id: str, countdown: float = 0) -> None:
    celery.send_task(DELIVER_WEBHOOK_TASK, args=[job_id], queue=WEBHOOK_QUEUE, countdown=countdown or None)


def queue_depths(settings: Settings, queues: tuple[str, ...] = ALL_QUEUES) -> dict[str, int]:
    """Messages waiting per queue, read from the broker itself (Redis lists or the
    filesystem broker's folder)."""
    client = broker_redis(settings)
    if client is not None:
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.llen(queue)
                return dict(zip(queues, (int(n) for n in pipe.execute()), strict=True))
        finally:
            client.close()
    if settings.broker_url.startswith("filesystem://"):
        folder = settings.broker_dir / "queue"
        names = [p.name for p in folder.glob("*.msg")] if folder.is_dir() else []
        return {queue: sum(1 for name in names if name.endswith(f".{queue}.msg")) for queue in queues}
    raise ValueError(f"queue depth is not supported for broker {settings.broker_url.split(':', 1)[0]}")
