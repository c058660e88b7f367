"""What every task's trainer does with presets: apply validated overrides, pick the device."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch

from services.trainer.loop import LoopConfig
from shared.config import get_settings
from shared.devices import pick_device


def apply_overrides(
    presets: Mapping[str, dict[str, Any]],
    preset: str,
    overrides: dict[str, Any] | None,
    valid: Callable[[str, Any, Any], bool],
) -> dict[str, Any]:
    """The preset's settings with `overrides` applied; unknown names and values that
    `valid(key, value, default)` refuses raise ValueError naming them."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(presets)}")
    config = dict(presets[preset])
    for key, value in (overrides or {}).items():
        if key not in config:
            raise ValueError(f"unknown override {key!r}; known keys: {sorted(config)}")
        if not valid(key, value, presets[preset][key]):
            raise ValueError(f"override {key!r} has the wrong type or value: {value!r}")
        config[key] = float(value) if isinstance(presets[preset][key], float) else value
    return {"preset": preset, **config}


def default_device() -> torch.device:
    return pick_device(get_settings().device)


def training_device(device: torch.device | None) -> torch.device:
    """The device to train on (given, else from settings), after applying the thread setting."""
    threads = get_settings().torch_threads
    if threads:
        torch.set_num_threads(threads)
    return device or default_device()


def loop_config(cfg: dict[str, Any], progress: bool, monitor: str, mode: Literal["max", "min"]) -> LoopConfig:
    """The training loop's settings from a resolved config (all presets carry these keys)."""
    return LoopConfig(
        epochs=cfg["epochs"], lr=cfg["lr"], weight_decay=cfg["weight_decay"], clip=cfg["clip"],
        patience=cfg["patience"], monitor=monitor, mode=mode, schedule=cfg["schedule"],
        lr_factor=cfg["lr_factor"], lr_patience=cfg["lr_patience"], seed=cfg["seed"], progress=progress,
    )
