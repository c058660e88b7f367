"""What every task's trainer returns to the training service."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from seqserve.services.trainer.datasets import DataFingerprint
from seqserve.services.trainer.loop import FitResult
from seqserve.services.trainer.plots import plot_curves
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, save_checkpoint


@dataclass
class TrainOutcome:
    checkpoint_path: Path
    sha256: str
    size_bytes: int
    metrics: dict[str, float]  # dev metrics of the saved weights (plus test metrics where run)
    config: dict[str, Any]  # fully resolved train config, preset name included
    model_config: dict[str, Any]
    data_fingerprint: str
    data_files: dict[str, str]  # each data file read -> its sha256
    history: list[dict[str, float]]
    curve_path: Path
    primary_metric: str  # the key in `metrics` the promotion gate compares
    drift_reference: dict[str, Any] | None = None  # dev input/prediction profile (seqserve.shared.drift)


def save_trained(
    task: str,
    model: nn.Module,
    extras: dict[str, Any],
    cfg: dict[str, Any],
    result: FitResult,
    metrics: dict[str, float],
    data: DataFingerprint,
    out_path: Path,
    primary_metric: str,
    run_info: dict[str, Any] | None = None,
) -> TrainOutcome:
    """Write the self-describing checkpoint (`extras` carries the task's vocabularies and
    labels) and the training curve beside it; every trainer ends here."""
    model_config = dataclasses.asdict(model.config)  # type: ignore[call-overload]
    payload = {
        "format": CHECKPOINT_FORMAT,
        "task": task,
        "model_config": model_config,
        **extras,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": dict(metrics),
        "data_fingerprint": data.digest,
        "data_files": data.files,
        "train_config": {**cfg, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
                         "stopped_for_time": result.stopped_for_time, **(run_info or {})},
    }
    out_path = Path(out_path)
    sha256, size = save_checkpoint(out_path, payload)
    curve_path = out_path.parent / "curve.png"
    plot_curves(result.history, curve_path)
    return TrainOutcome(out_path, sha256, size, dict(metrics), dict(cfg), model_config, data.digest, data.files,
                        result.history, curve_path, primary_metric, extras.get("drift_reference"))
