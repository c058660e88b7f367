"""A training run end to end: run row -> train -> register version -> promotion gate.

A run that fails ends `failed` with its error and registers nothing.
"""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqserve.services.trainer.common import NoNewData
from seqserve.shared import tasks
from seqserve.shared.audit import repository as audit
from seqserve.shared.config import Settings, get_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.migrate import REPO_ROOT
from seqserve.shared.db.models import RunStatus, TrainingRun
from seqserve.shared.db.session import session_scope
from seqserve.shared.metrics import TRAINING_RUNS_TOTAL
from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version
from seqserve.shared.training import DEFAULT_MODEL_NAMES
from seqserve.shared.training import repository as runs_repo

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
        version = register_version(session, new)
        decision = promote_if_better(session, version, settings.promotion_margin)
        audit.record(session, "trainer", audit.Action.training_finished, str(run_id), {
            "model_name": model_name, "version": version.version, "promoted": decision.promoted,
            "reason": decision.reason, "dataset_fingerprint": outcome.data_fingerprint})
        run = session.get(TrainingRun, run_id)
        assert run is not None
        run.status = RunStatus.succeeded.value
        run.config = {**run.config, "resolved": outcome.config}
        run.metrics = outcome.metrics
        run.history = outcome.history
        run.finished_at = utcnow()
        return RunReport(run_id, model_name, version.version, outcome.metrics, decision.promoted,
                         decision.reason, outcome.checkpoint_path)


def execute_run(run_id: uuid.UUID, progress: bool = True) -> RunReport:
    """Train the run's task and preset, register the checkpoint, gate its promotion. A run
    that fails ends `failed` with its error and registers nothing."""
    report = execute_unless_unchanged(run_id, progress, None)
    assert report is not None  # nothing to compare with: never skipped
    return report


def execute_unless_unchanged(run_id: uuid.UUID, progress: bool, unchanged_fingerprint: str | None
                             ) -> RunReport | None:
    """As execute_run; a run whose data has `unchanged_fingerprint` ends `skipped` before it
    trains (None)."""
    settings = get_settings()
    with session_scope() as session:
        run = runs_repo.get(session, run_id)
        if run is None:
            raise LookupError(f"no training run {run_id}")
        runs_repo.mark_running(session, run)
        task, preset, model_name = run.task, run.preset, run.model_name
        overrides = dict(run.config.get("overrides", {}))
    assert settings.artifact_dir is not None and settings.data_dir is not None
    out_path = settings.artifact_dir / "models" / model_name / "runs" / str(run_id) / "model.pt"
    try:
        trainer = trainers()[task]
        outcome = trainer(
            data_dir=settings.data_dir, out_path=out_path, preset=preset, overrides=overrides,
            on_epoch=_record_epoch(run_id), progress=progress, unchanged_fingerprint=unchanged_fingerprint,
        )
        report = _register(run_id, task, model_name, outcome, settings)
    except NoNewData as skip:
        _mark_skipped(run_id, model_name, str(skip))
        TRAINING_RUNS_TOTAL.labels(task, "skipped").inc()
        return None
    except BaseException as exc:
        log.error("training run %s failed: %s", run_id, exc)
        with session_scope() as session:
            runs_repo.mark_failed(session, run_id, f"{type(exc).__name__}: {exc}")
        TRAINING_RUNS_TOTAL.labels(task, "failed").inc()
        raise
    TRAINING_RUNS_TOTAL.labels(task, "succeeded").inc()
    return report


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
    if task not in DEFAULT_MODEL_NAMES:
        raise ValueError(f"task '{task}' cannot be trained; trainable: {', '.join(sorted(DEFAULT_MODEL_NAMES))}")
    with session_scope() as session:
        run = runs_repo.create(session, task, preset, model_name or DEFAULT_MODEL_NAMES[task], overrides or {})
        return run.id


def train_and_register(
    task: str,
    preset: str = "quick",
    overrides: dict[str, Any] | None = None,
    model_name: str | None = None,
    progress: bool = True,
) -> RunReport:
    """Create a run for `task` and `preset` and execute it here (the CLI's `seqserve train`)."""
    return execute_run(create_run(task, preset, overrides, model_name), progress=progress)
