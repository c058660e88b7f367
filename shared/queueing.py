"""The Celery app as both sides see it: the API publishes by task name, the worker consumes.

Only ids travel in messages; the job row is the source of truth, so no result backend.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid

from celery import Celery
from kombu import Queue

from seqserve.shared.config import Settings, get_settings

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
    `trigger`: the coalescing key this message holds (see `TriggerGate`). On a Redis broker the
    message goes straight onto the queue's list (`job_message`); others go through kombu."""
    url = str(celery.conf.broker_url or "")
    if url.startswith(("redis://", "rediss://")):
        from seqserve.shared.notify import redis_client

        queue = queue_for(priority)
        redis_client(url).lpush(queue, job_message(job_id, queue, trigger))
        return
    kwargs = {"trigger": trigger} if trigger else {}
    celery.send_task(RUN_JOB_TASK, args=[job_id], kwargs=kwargs, queue=queue_for(priority), retry=True,
                     retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2})


_ORIGIN = f"seqserve@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def job_message(job_id: str, queue: str, trigger: str | None = None) -> str:
    """The run-job message exactly as kombu's Redis transport stores it (a JSON envelope around
    a Celery protocol-2 task message), built without kombu's per-message machinery (producer
    pool, publish retry wrapper, serializer registry): that machinery was ~10% of the API's CPU
    per job. Priority 0, so the queue's own list (kombu's key for priority 0)."""
    task_id = str(uuid.uuid4())
    kwargs = {"trigger": trigger} if trigger else {}
    body = json.dumps([[job_id], kwargs, _EMBED]).encode()
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": RUN_JOB_TASK, "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
            "parent_id": None, "argsrepr": repr([job_id]), "kwargsrepr": repr(kwargs), "origin": _ORIGIN,
            "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": None, "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0, "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })


# Compare-and-delete: only the message that set the key releases it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
# Set the key and push the message, or neither: one round trip.
_ACQUIRE_AND_PUSH = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    redis.call('lpush', KEYS[2], ARGV[3])
    return 1
end
return 0
"""


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
        from seqserve.shared.notify import redis_client

        self._redis = redis_client(url)
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._release = self._redis.register_script(_RELEASE)
        self._acquire_and_push = self._redis.register_script(_ACQUIRE_AND_PUSH)

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

    def publish_if_first(self, key: str, job_id: str, priority: str) -> bool:
        """`acquire` and, when this job's message is due, push it onto its queue (the gate's
        Redis is the broker), atomically: True when the message was pushed."""
        queue = queue_for(priority)
        pushed = self._acquire_and_push(keys=[key, queue], args=[job_id, self._ttl_ms, job_message(job_id, queue, key)])
        return bool(pushed)

    def release(self, key: str, job_id: str) -> None:
        self._release(keys=[key], args=[job_id])


_gates: dict[tuple[int, str, float], TriggerGate] = {}


def trigger_gate(settings: Settings) -> TriggerGate | None:
    """The gate when coalescing is on and the broker is Redis; None means publish every job."""
    from seqserve.shared.notify import redis_url

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
