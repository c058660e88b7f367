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

from shared.config import Settings, get_settings
from shared.db.base import utcnow
from shared.db.models import RunStatus, TrainingRun
from shared.db.migrate import REPO_ROOT
from shared.db.session import session_scope
from shared.registry.service import NewVersion, promote_if_better, register_version

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAMES = {"classify": "sst2-classifier"}


@dataclass(frozen=True)
class RunReport:
    run_id: uuid.UUID
    model_name: str
    version: int
    metrics: dict[str, Any]
    promoted: bool
    promotion_note: str
    checkpoint_path: Path


def _trainers() -> dict[str, Callable[..., Any]]:
    # Imported lazily: torch is heavy and only training needs these modules.
    from services.trainer.classify import train_classifier

    return {"classify": train_classifier}


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


def start_run(task: str, preset: str, model_name: str, overrides: dict[str, Any]) -> uuid.UUID:
    with session_scope() as session:
        run = TrainingRun(
            model_name=model_name, task=task, preset=preset, status=RunStatus.running.value,
            config={"overrides": overrides}, started_at=utcnow(),
        )
        session.add(run)
        session.flush()
        return run.id


def _record_epoch(run_id: uuid.UUID) -> Callable[[dict[str, Any]], None]:
    def on_epoch(entry: dict[str, Any]) -> None:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            if run is not None:
                run.history = [*run.history, entry]
    return on_epoch


def _fail_run(run_id: uuid.UUID, error: BaseException) -> None:
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        if run is not None:
            run.status = RunStatus.failed.value
            run.error = f"{type(error).__name__}: {error}"
            run.finished_at = utcnow()


def _register(run_id: uuid.UUID, task: str, model_name: str, outcome: Any, settings: Settings) -> RunReport:
    new = NewVersion(
        model_name=model_name, task=task, checkpoint_uri=str(outcome.checkpoint_path.resolve()),
        sha256=outcome.sha256, size_bytes=outcome.size_bytes, metrics=outcome.metrics,
        primary_metric=outcome.primary_metric, dataset_fingerprint=outcome.data_fingerprint,
        architecture=outcome.model_config, train_config=outcome.config,
        artifacts={"training_curve": str(outcome.curve_path.resolve())},
        code_version=code_version(), training_run_id=run_id,
    )
    with session_scope() as session:
        version = register_version(session, new)
        decision = promote_if_better(session, version, settings.promotion_margin)
        run = session.get(TrainingRun, run_id)
        assert run is not None
        run.status = RunStatus.succeeded.value
        run.config = {**run.config, "resolved": outcome.config}
        run.metrics = outcome.metrics
        run.history = outcome.history
        run.finished_at = utcnow()
        return RunReport(run_id, model_name, version.version, outcome.metrics, decision.promoted,
                         decision.reason, outcome.checkpoint_path)


def train_and_register(
    task: str,
    preset: str = "quick",
    overrides: dict[str, Any] | None = None,
    model_name: str | None = None,
    progress: bool = True,
) -> RunReport:
    """Train `task` with `preset`, register the checkpoint, and gate its promotion."""
    settings = get_settings()
    trainers = _trainers()
    if task not in trainers:
        raise ValueError(f"task '{task}' cannot be trained yet; trainable: {', '.join(sorted(trainers))}")
    overrides = overrides or {}
    model_name = model_name or DEFAULT_MODEL_NAMES[task]
    run_id = start_run(task, preset, model_name, overrides)
    assert settings.artifact_dir is not None and settings.data_dir is not None
    out_path = settings.artifact_dir / "models" / model_name / "runs" / str(run_id) / "model.pt"
    try:
        outcome = trainers[task](
            data_dir=settings.data_dir, out_path=out_path, preset=preset, overrides=overrides,
            on_epoch=_record_epoch(run_id), progress=progress,
        )
        return _register(run_id, task, model_name, outcome, settings)
    except BaseException as exc:
        log.error("training run %s failed: %s", run_id, exc)
        _fail_run(run_id, exc)
        raise
