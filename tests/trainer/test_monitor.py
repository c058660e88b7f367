"""Between batches: progress into the run row (throttled), a line for the terminal at least
every LOG_INTERVAL_SECONDS, and a cancel request ending the run with nothing registered."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from seqserve.services.trainer import monitor as monitor_module
from seqserve.services.trainer.loop import BatchTick
from seqserve.services.trainer.monitor import RunMonitor, TrainingCancelled
from seqserve.services.trainer.service import create_run, execute_run
from seqserve.shared.db.models import ModelVersion, RunStatus, TrainingRun
from seqserve.shared.db.session import session_scope
from seqserve.shared.training import repository as runs_repo
from seqserve.shared.training.progress import TrainingProgress

TINY = {"max_train_examples": 400, "epochs": 2, "embedding_dim": 16, "hidden_size": 16, "batch_size": 8}


def test_progress_measures_eta_from_the_pace_so_far() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    progress = TrainingProgress.measure(2, 3, 25, 100, 800, 10.0, now)  # 0.4 s a batch
    assert (progress.epoch_eta_s, progress.eta_s, progress.examples_per_s) == (30.0, 70.0, 80.0)
    assert progress.line() == "epoch 2/3, batch 25/100, 80 examples/s, ETA 1m10s"
    unsized = TrainingProgress.measure(1, 3, 5, None, 40, 2.0, now)
    assert unsized.eta_s is None and unsized.line() == "epoch 1/3, batch 5, 20 examples/s"


def test_a_training_run_logs_progress_and_records_it(
    db: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor_module, "PROGRESS_INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(monitor_module, "LOG_INTERVAL_SECONDS", 0.0)  # a line per batch: the run is short
    run_id = create_run("classify", "quick", TINY, "monitored")
    with caplog.at_level(logging.INFO, logger="seqserve.train"):
        report = execute_run(run_id, progress=False)
    assert report is not None and report.version == 1
    lines = [r.getMessage() for r in caplog.records if "batch " in r.getMessage()]
    assert lines and lines[-1].startswith("training monitored (classify, quick): epoch 2/2, batch 50/50")
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None and run.progress is not None
        assert (run.progress["epoch"], run.progress["batches_done"], run.progress["batches_total"]) == (2, 50, 50)


def test_a_cancel_request_stops_the_run_at_the_next_batch(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ticks: list[BatchTick] = []
    original = RunMonitor.__call__

    def cancel_after_three(self: RunMonitor, tick: BatchTick) -> None:
        ticks.append(tick)
        if len(ticks) == 3:
            with session_scope() as session:
                run = runs_repo.get_locked(session, self.run_id)
                assert run is not None
                runs_repo.request_cancel(session, run)
        original(self, tick)

    monkeypatch.setattr(monitor_module, "PROGRESS_INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(RunMonitor, "__call__", cancel_after_three)
    run_id = create_run("classify", "quick", TINY, "cancelled-here")
    assert execute_run(run_id, progress=False) is None
    assert len(ticks) == 3  # the batch after the request never ran
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None and run.status == RunStatus.cancelled.value and run.finished_at is not None
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
    assert execute_run(run_id, progress=False) is None  # a redelivered message does not start it again


def test_the_monitor_raises_when_the_row_says_cancel(db: str) -> None:
    run_id = create_run("classify", "quick", TINY, "flagged")
    with session_scope() as session:
        run = runs_repo.get_locked(session, run_id)
        assert run is not None
        runs_repo.mark_running(session, run)
        runs_repo.request_cancel(session, run)
    with pytest.raises(TrainingCancelled):
        RunMonitor(run_id, "flagged")(BatchTick(1, 2, 1, 1, 8, 0.1))  # the last batch always writes
