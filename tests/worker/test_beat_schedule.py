"""Beat's schedule: reconciliation, canaries per inference queue, retraining from settings."""

from __future__ import annotations

from celery.schedules import crontab

from seqserve.services.worker.app import beat_schedule
from seqserve.shared.config import Settings
from seqserve.shared.queueing import INFERENCE_QUEUES


def test_schedule_has_reconciler_canaries_and_retraining() -> None:
    settings = Settings(
        retrain_schedule=[{"task": "classify", "preset": "quick", "cron": "30 2 * * 1", "overrides": {"epochs": 2}}],
        canary_interval_seconds=7,
    )
    schedule = beat_schedule(settings)
    assert schedule["reconcile-jobs"]["options"]["queue"] == "maintenance"
    for queue in INFERENCE_QUEUES:
        entry = schedule[f"canary-{queue}"]
        assert entry["args"] == [queue] and entry["options"]["queue"] == queue and entry["schedule"] == 7
    retrain = schedule["retrain-0-classify"]
    assert retrain["task"] == "seqserve.training.scheduled"
    assert retrain["options"] == {"queue": "training"}
    assert retrain["kwargs"] == {"task": "classify", "preset": "quick", "model_name": None, "overrides": {"epochs": 2}}
    assert retrain["schedule"] == crontab(minute="30", hour="2", day_of_week="1")


def test_no_retraining_unless_configured() -> None:
    assert not [name for name in beat_schedule(Settings()) if name.startswith("retrain")]


def test_schedule_sweeps_jobs_and_may_retrain_every_few_seconds() -> None:
    settings = Settings(job_sweep_interval_seconds=3,
                        retrain_schedule=[{"task": "classify", "every_seconds": 4.5, "model_name": "m"}])
    schedule = beat_schedule(settings)
    assert schedule["sweep-jobs"]["task"] == "seqserve.jobs.sweep" and schedule["sweep-jobs"]["schedule"] == 3
    assert schedule["sweep-jobs"]["options"]["queue"] == "maintenance"
    assert schedule["retrain-0-classify"]["schedule"] == 4.5
