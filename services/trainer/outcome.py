"""What every task's trainer returns to the training service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class TrainOutcome:
    checkpoint_path: Path
    sha256: str
    size_bytes: int
    metrics: dict[str, float]  # dev metrics of the saved weights (plus test metrics where run)
    config: dict[str, Any]  # fully resolved train config, preset name included
    model_config: dict[str, Any]
    data_fingerprint: str
    history: list[dict[str, float]]
    curve_path: Path
    primary_metric: str  # the key in `metrics` the promotion gate compares
