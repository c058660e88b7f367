"""Device choice. Called only in the process that runs inference (a Celery child), never in
the parent, so CUDA is never initialised before a fork."""

from __future__ import annotations

import torch

from seqserve.shared import devices
from seqserve.shared.config import Settings
from seqserve.shared.threads import apply_threads


def pick_device(settings: Settings) -> torch.device:
    return devices.pick_device(settings.device)


def configure_torch(settings: Settings) -> None:
    # `seqserve worker` puts its --concurrency in SEQSERVE_TORCH_PROCESSES before the pool forks.
    apply_threads("worker", settings.worker_concurrency)
