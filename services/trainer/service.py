"""A training run end to end: run row -> train -> register version -> promotion gate.

A run that fails ends `failed` with its error and registers nothing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqserve.services.trainer.common import NoNewData
from seqserve.services.trainer.monitor import RunMonitor, TrainingCancelled
from seqserve.shared import tasks
from seqserve.shared.audit import repository as audit
from seqserve.shared.config import Settings, get_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.migrate import REPO_ROOT
from seqserve.shared.db.models import RunStatus, TrainingRun
from seqserve.shared.db.session import session_scope
from seqserve.shared.error_text import public_error_text
from seqserve.shared.metrics import TRAINING_RUNS_TOTAL
from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version
from seqserve.shared.training import DEFAULT_MODEL_NAMES
from seqserve.shared.training import repository as runs_repo
from seqserve.shared.training.data_files import check_data
from seqserve.shared.training.presets import resolve_config

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RunReport:
    run_id: uuid.UUID
    model_name: str
    version: int
    metrics: dict[str, Any]
    promoted: bool
    promotion_note: str
    checkpoint_path: Path


def trainers() -> dict[str, Callable[..., Any]]:
    # Imported lazily: torch is heavy and only training needs these modules.
    return {name: tasks.load(spec.trainer) for name, spec in tasks.TASKS.items()}


def code_version() -> str:
    """The git commit the code came from, or '' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _record_epoch(run_id: uuid.UUID) -> Callable[[dict[str, Any]], None]:
    def on_epoch(entry: dict[str, Any]) -> None:
        with session_scope() as session:
            runs_repo.append_epoch(session, run_id, entry)
    return on_epoch


def _register(run_id: uuid.UUID, task: str, model_name: str, outcome: Any, settings: Settings) -> RunReport:
    new = NewVersion(
        model_name=model_name, task=task, checkpoint_uri=str(outcome.checkpoint_path.resolve()),
        sha256=outcome.sha256, size_bytes=outcome.size_bytes, metrics=outcome.metrics,
        primary_metric=outcome.primary_metric, dataset_fingerprint=outcome.data_fingerprint,
        architecture=outcome.model_config, train_config=outcome.config,
        artifacts={"training_curve": str(outcome.curve_path.resolve())},
        code_version=code_version(), training_run_id=run_id, drift_reference=outcome.drift_reference,
    )
    with session_scope() as session:
        run = runs_repo.get_locked(session, run_id)  # a cancel that came during the last epoch wins
        if run is None or run.cancel_requested_at is not None:
            raise TrainingCancelled(f"training run {run_id} cancelled before its version was registered")
        version = register_version(session, new)
        decision = promote_if_better(session, version, settings.promotion_margin)
        audit.record(session, "trainer", audit.Action.training_finished, str(run_id), {
            "model_name": model_name, "version": version.version, "promoted": decision.promoted,
            "reason": decision.reason, "dataset_fingerprint": outcome.data_fingerprint})
        run.status = RunStatus.succeeded.value
        run.config = {**run.config, "resolved": outcome.config}
        run.metrics = outcome.metrics
        run.history = outcome.history
        run.finished_at = utcnow()
        return RunReport(run_id, model_name, version.version, outcome.metrics, decision.promoted,
                         decision.reason, outcome.checkpoint_path)


def _start(run_id: uuid.UUID) -> tuple[str, str, str, dict[str, Any]] | None:
    """Mark a queued run running; None when it is not queued (cancelled before it started)."""
    with session_scope() as session:
        run = runs_repo.get_locked(session, run_id)
        if run is None:
            raise LookupError(f"no training run {run_id}")
        if run.status != RunStatus.queued.value:
            log.info("training run %s is %s: not started", run_id, run.status)
            return None
        runs_repo.mark_running(session, run)
        return run.task, run.preset, run.model_name, dict(run.config.get("overrides", {}))


def execute_run(run_id: uuid.UUID, progress: bool = True) -> RunReport | None:
    """Train the run's task and preset, register the checkpoint, gate its promotion. A run
    that fails ends `failed` with its error, a cancelled one `cancelled` (None); neither
    registers anything."""
    return execute_unless_unchanged(run_id, progress, None)


def execute_unless_unchanged(run_id: uuid.UUID, progress: bool, unchanged_fingerprint: str | None
                             ) -> RunReport | None:
    """As execute_run; a run whose data has `unchanged_fingerprint` ends `skipped` before it
    trains (None)."""
    settings = get_settings()
    started = _start(run_id)
    if started is None:
        return None
    task, preset, model_name, overrides = started
    assert settings.artifact_dir is not None and settings.data_dir is not None
    out_path = settings.artifact_dir / "models" / model_name / "runs" / str(run_id) / "model.pt"
    monitor = RunMonitor(run_id, f"training {model_name} ({task}, {preset})")
    try:
        check_data(task, resolve_config(task, preset, overrides), settings.data_dir)
        outcome = trainers()[task](
            data_dir=settings.data_dir, out_path=out_path, preset=preset, overrides=overrides,
            on_epoch=_record_epoch(run_id), progress=progress, on_batch=monitor,
            unchanged_fingerprint=unchanged_fingerprint,
        )
        report = _register(run_id, task, model_name, outcome, settings)
    except NoNewData as skip:
        _mark_skipped(run_id, model_name, str(skip))
        TRAINING_RUNS_TOTAL.labels(task, "skipped").inc()
        return None
    except TrainingCancelled as exc:
        log.info("%s", exc)
        _mark_cancelled(run_id, task, out_path)
        return None
    except (KeyboardInterrupt, SystemExit) as exc:
        # Ctrl-C or a SIGTERM to the process training here (`seqserve train`, `up`'s first
        # run): the user stopped it, it did not fail.
        log.info("training run %s stopped (%s): cancelled", run_id, type(exc).__name__)
        _mark_cancelled(run_id, task, out_path)
        raise
    except BaseException as exc:
        log.error("training run %s failed: %s", run_id, exc)
        with session_scope() as session:
            runs_repo.mark_failed(session, run_id, public_error_text(exc))
        TRAINING_RUNS_TOTAL.labels(task, "failed").inc()
        raise
    TRAINING_RUNS_TOTAL.labels(task, "succeeded").inc()
    return report


def _mark_cancelled(run_id: uuid.UUID, task: str, out_path: Path) -> None:
    shutil.rmtree(out_path.parent, ignore_errors=True)  # registers nothing, keeps nothing
    with session_scope() as session:
        runs_repo.mark_cancelled(session, run_id)
    TRAINING_RUNS_TOTAL.labels(task, "cancelled").inc()


def _mark_skipped(run_id: uuid.UUID, model_name: str, reason: str) -> None:
    log.info("training run %s skipped: %s", run_id, reason)
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        run.status, run.finished_at = RunStatus.skipped.value, utcnow()
        run.config = {**run.config, "skipped": reason}
        audit.record(session, "beat", audit.Action.training_skipped, str(run_id),
                     {"model_name": model_name, "reason": reason})


def create_run(task: str, preset: str, overrides: dict[str, Any] | None, model_name: str | None) -> uuid.UUID:
    """A queued run row, after checking what can be checked before it exists: the task, the
    overrides (OverrideError) and the data files (MissingDataError). A refused run leaves no row."""
    if task not in DEFAULT_MODEL_NAMES:
        raise ValueError(f"task '{task}' cannot be trained; trainable: {', '.join(sorted(DEFAULT_MODEL_NAMES))}")
    data_dir = get_settings().data_dir
    assert data_dir is not None
    check_data(task, resolve_config(task, preset, overrides), data_dir)
    with session_scope() as session:
        run = runs_repo.create(session, task, preset, model_name or DEFAULT_MODEL_NAMES[task], overrides or {})
        return run.id


def train_and_register(
    task: str,
    preset: str = "quick",
    overrides: dict[str, Any] | None = None,
    model_name: str | None = None,
    progress: bool = True,
) -> RunReport | None:
    """Create a run for `task` and `preset` and execute it here (the CLI's `seqserve train`);
    None when it was cancelled."""
    return execute_run(create_run(task, preset, overrides, model_name), progress=progress)
