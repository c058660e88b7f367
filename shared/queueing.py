"""The Celery app as both sides see it: the API publishes by task name, the worker consumes.

Only ids travel in messages; the job row is the source of truth, so no result backend.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

from shared.config import Settings, get_settings

RUN_JOB_TASK = "seqserve.jobs.run"
DELIVER_WEBHOOK_TASK = "seqserve.webhooks.deliver"
RECONCILE_TASK = "seqserve.jobs.reconcile"
CANARY_TASK = "seqserve.queues.canary"

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


def publish_job(celery: Celery, job_id: str, priority: str, trigger: str | None = None) -> None:
    """Publish a job's id to its priority queue; raises when the broker is unreachable.
    `trigger`: the coalescing key this message holds (see `TriggerGate`)."""
    kwargs = {"trigger": trigger} if trigger else {}
    celery.send_task(RUN_JOB_TASK, args=[job_id], kwargs=kwargs, queue=queue_for(priority), retry=True,
                     retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2})


# Compare-and-delete: only the message that set the key releases it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class TriggerGate:
    """Coalesced wake-ups: one message in flight per batch group instead of one per job.

    A batch group is (model version, batch key, priority). A submitted job publishes a
    message only if it sets the group's key (SET NX); otherwise a message for its group is
    already queued, and the worker that takes that message releases the key *before* its last
    gather, so every job that found the key set is committed before that gather looks. A
    worker whose batch filled up publishes a new trigger for what is left. The key expires
    after `ttl_seconds`, so a lost message holds a group back for that long at most (the
    reconciler re-publishes anything left queued).
    """

    PREFIX = "seqserve:trigger:"

    def __init__(self, url: str, ttl_seconds: float) -> None:
        from shared.notify import redis_client

        self._redis = redis_client(url)
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._release = self._redis.register_script(_RELEASE)

    @classmethod
    def key(cls, version_id: int, kind: str, batch_key: str, priority: str) -> str:
        return f"{cls.PREFIX}{version_id}:{kind}:{batch_key}:{priority}"

    @classmethod
    def group(cls, key: str) -> tuple[int, str, str]:
        """(version id, kind, batch key) of a trigger key."""
        version_id, kind, batch_key, _ = key.removeprefix(cls.PREFIX).split(":")
        return int(version_id), kind, batch_key

    def acquire(self, key: str, job_id: str) -> bool:
        """True when this job's message must be published (no trigger pending)."""
        return bool(self._redis.set(key, job_id, nx=True, px=self._ttl_ms))

    def release(self, key: str, job_id: str) -> None:
        self._release(keys=[key], args=[job_id])


_gates: dict[tuple[int, str, float], TriggerGate] = {}


def trigger_gate(settings: Settings) -> TriggerGate | None:
    """The gate when coalescing is on and the broker is Redis; None means publish every job."""
    from shared.notify import redis_url

    url = redis_url(settings)
    if not settings.coalesce_triggers or url is None:
        return None
    key = (os.getpid(), url, settings.trigger_ttl_seconds)
    if key not in _gates:
        _gates[key] = TriggerGate(url, settings.trigger_ttl_seconds)
    return _gates[key]


def publish_webhook(celery: Celery, job_id: str, countdown: float = 0) -> None:
    celery.send_task(DELIVER_WEBHOOK_TASK, args=[job_id], queue=WEBHOOK_QUEUE, countdown=countdown or None)


def queue_depths(settings: Settings, queues: tuple[str, ...] = ALL_QUEUES) -> dict[str, int]:
    """Messages waiting per queue, read from the broker itself (Redis lists or the
    filesystem broker's folder)."""
    if settings.broker_url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.llen(queue)
                return dict(zip(queues, (int(n) for n in pipe.execute())))
        finally:
            client.close()
    if settings.broker_url.startswith("filesystem://"):
        folder = settings.broker_dir / "queue"
        names = [p.name for p in folder.glob("*.msg")] if folder.is_dir() else []
        return {queue: sum(1 for name in names if name.endswith(f".{queue}.msg")) for queue in queues}
    raise ValueError(f"queue depth is not supported for broker {settings.broker_url.split(':', 1)[0]}")
