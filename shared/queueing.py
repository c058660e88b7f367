"""The Celery app as both sides see it: the API publishes by task name, the worker consumes.

Only ids travel in messages; the job row is the source of truth, so no result backend.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared.config import Settings, get_settings

RUN_JOB_TASK = "seqserve.jobs.run"
PRIORITY_QUEUES = {"high": "inference.high", "normal": "inference.normal", "low": "inference.low"}


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
    return {"visibility_timeout": 3600}


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
        task_queues=[Queue(name) for name in PRIORITY_QUEUES.values()],
        worker_hijack_root_logger=False,
    )
    return app
