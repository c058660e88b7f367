"""The trainer's Celery app: `seqserve trainer` consumes the training queue (inference
workers never do), for runs started over HTTP and by beat's retraining schedule."""

from __future__ import annotations

import uuid

from celery.signals import worker_process_init

from seqserve.shared.celery_metrics import serve_from_parent
from seqserve.shared.config import get_settings
from seqserve.shared.db.session import dispose_engines
from seqserve.shared.queueing import make_celery
from seqserve.shared.threads import apply_threads
from seqserve.shared.training import RUN_TRAINING_TASK, SCHEDULED_TRAINING_TASK

app = make_celery()


serve_from_parent(lambda: get_settings().trainer_metrics_port, "trainer")


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    dispose_engines()
    apply_threads("trainer")


# acks_late off: a full run outlasts the broker's visibility timeout, and a redelivered
# message would train twice. A trainer that dies leaves its run `running`, visibly.
@app.task(name=RUN_TRAINING_TASK, acks_late=False)
def run_training_task(run_id: str) -> dict:
    from seqserve.services.trainer.service import execute_run

    report = execute_run(uuid.UUID(run_id), progress=False)
    return {"version": report.version, "promoted": report.promoted} if report else {"cancelled": True}


@app.task(name=SCHEDULED_TRAINING_TASK, acks_late=False)
def scheduled_training_task(
    task: str, preset: str, model_name: str | None = None, overrides: dict | None = None
) -> dict:
    from seqserve.services.trainer.scheduled import run_scheduled

    return run_scheduled(task, preset, model_name, overrides)
