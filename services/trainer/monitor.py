"""Between training batches: write the run's progress into its row, stop on a cancel
request, and log a progress line for terminals and logs (`seqserve up`, `scripts/run.sh`)."""

from __future__ import annotations

import logging
import time
import uuid

from seqserve.services.trainer.loop import BatchTick
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.session import session_scope
from seqserve.shared.training import repository as runs_repo
from seqserve.shared.training.progress import PROGRESS_INTERVAL_SECONDS, TrainingProgress

log = logging.getLogger("seqserve.train")

# A progress line at least every 10 s while batches run: checked between batches, so a margin
# for a slow batch on a busy machine.
LOG_INTERVAL_SECONDS = 8.0


class TrainingCancelled(Exception):
    """The run's cancel was requested; it ends `cancelled` and registers nothing."""


class RunMonitor:
    """The `on_batch` hook of one run. One database round trip per PROGRESS_INTERVAL_SECONDS
    at most, so a 5 ms batch does not wait on the database."""

    def __init__(self, run_id: uuid.UUID, label: str, log_interval: float | None = None) -> None:
        self.run_id, self.label = run_id, label
        self.log_interval = LOG_INTERVAL_SECONDS if log_interval is None else log_interval
        self._written = self._logged = time.monotonic()

    def __call__(self, tick: BatchTick) -> None:
        now = time.monotonic()
        if now - self._written < PROGRESS_INTERVAL_SECONDS and tick.done != tick.total:
            return
        progress = TrainingProgress.measure(tick.epoch, tick.epochs, tick.done, tick.total, tick.examples,
                                            tick.elapsed, utcnow())
        self._written = now
        with session_scope() as session:
            cancelled = runs_repo.record_progress(session, self.run_id, progress.model_dump(mode="json"))
        if cancelled:
            raise TrainingCancelled(f"training run {self.run_id} cancelled at epoch {tick.epoch} batch {tick.done}")
        if now - self._logged >= self.log_interval:
            self._logged = now
            log.info("%s: %s", self.label, progress.line())
