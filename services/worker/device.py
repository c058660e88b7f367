"""Device choice. Called only in the process that runs inference (a Celery child), never in
the parent, so CUDA is never initialised before a fork."""

from __future__ import annotations

import torch

from shared.config import Settings


def pick_device(settings: Settings) -> torch.device:
    if settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def configure_torch(settings: Settings) -> None:
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
