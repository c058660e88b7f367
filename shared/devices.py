"""Which torch device a process uses, from `SEQSERVE_DEVICE` (auto|cpu|cuda)."""

from __future__ import annotations

import torch


def pick_device(wanted: str) -> torch.device:
    """`auto` means CUDA when this process can see a GPU, else the CPU."""
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(wanted)
