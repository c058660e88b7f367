"""Celery tasks: thin wrappers that pass ids to the runner."""

from __future__ import annotations

from services.worker.app import app
from services.worker.runner import run_job
from shared.queueing import RUN_JOB_TASK


@app.task(name=RUN_JOB_TASK)
def run_job_task(job_id: str) -> str:
    return run_job(job_id)
