"""A training run's progress inside an epoch: what the trainer writes into the run row (at
most every PROGRESS_INTERVAL_SECONDS) and `GET /v1/training-runs/{id}` shows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

# How often the trainer writes progress and looks for a cancel request, between batches.
PROGRESS_INTERVAL_SECONDS = 1.0


class TrainingProgress(BaseModel):
    epoch: int = Field(description="The epoch in progress, from 1.")
    epochs: int = Field(description="Epochs the run may take (early stopping and the time budget may end it sooner).")
    batches_done: int
    batches_total: int | None = Field(description="Batches of this epoch; null when the task cannot count them ahead.")
    examples_per_s: float = Field(description="Training examples per second in this epoch.")
    epoch_eta_s: float | None = Field(description="Seconds left in this epoch at its pace so far.")
    eta_s: float | None = Field(description="Seconds left in the run: this epoch and the remaining ones at this "
                                "epoch's pace (dev evaluation excluded; early stopping may end it sooner).")
    updated_at: datetime

    @classmethod
    def measure(cls, epoch: int, epochs: int, done: int, total: int | None, examples: int, elapsed: float,
                now: datetime) -> TrainingProgress:
        per_batch = elapsed / max(done, 1)
        epoch_eta = None if total is None else max(total - done, 0) * per_batch
        eta = None if epoch_eta is None or total is None else epoch_eta + (epochs - epoch) * total * per_batch
        return cls(epoch=epoch, epochs=epochs, batches_done=done, batches_total=total,
                   examples_per_s=round(examples / max(elapsed, 1e-9), 1),
                   epoch_eta_s=None if epoch_eta is None else round(epoch_eta, 1),
                   eta_s=None if eta is None else round(eta, 1), updated_at=now)

    def line(self) -> str:
        """One progress line for a terminal or a log."""
        batches = f"{self.batches_done}/{self.batches_total}" if self.batches_total else f"{self.batches_done}"
        eta = f", ETA {_duration(self.eta_s)}" if self.eta_s is not None else ""
        return f"epoch {self.epoch}/{self.epochs}, batch {batches}, {self.examples_per_s:.0f} examples/s{eta}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
