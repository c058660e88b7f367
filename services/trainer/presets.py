"""What every task's trainer does with presets: apply validated overrides, pick the device."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

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
