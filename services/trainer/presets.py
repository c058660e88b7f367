"""What every task's trainer does with presets: apply validated overrides, pick the device."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch

from seqserve.services.trainer.loop import LoopConfig
from seqserve.shared.config import get_settings
from seqserve.shared.devices import pick_device
from seqserve.shared.nn.cells import make_rnn

log = logging.getLogger("seqserve.train")

# Loop settings every task carries whose valid range a type check does not give: [low, high).
_HALF_OPEN_RANGES = {"ema_decay": (0.0, 1.0)}


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
        bounds = _HALF_OPEN_RANGES.get(key)
        in_range = bounds is None or (isinstance(value, (int, float)) and bounds[0] <= value < bounds[1])
        if not in_range or not valid(key, value, presets[preset][key]):
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
        time_budget_s=60.0 * cfg["time_budget_minutes"], ema_decay=cfg["ema_decay"],
    )


@functools.cache
def bf16_autocast_supported(device_type: str, cell: str) -> bool:
    """Whether a `cell` RNN trains under bfloat16 autocast on this machine's `device_type`.

    On CPUs without native bfloat16 (AVX512-BF16 or AMX) oneDNN refuses the RNN primitive
    ("could not create a primitive descriptor"), so a preset asking for autocast probes first.
    """
    try:
        rnn = make_rnn(cell, 8, 8, 1, False, 0.0).to(device_type)
        with torch.autocast(device_type, dtype=torch.bfloat16):
            outputs, _ = rnn(torch.ones(2, 3, 8, device=device_type))
        outputs.float().sum().backward()
    except RuntimeError as exc:
        log.info("bfloat16 autocast unavailable for %s on %s: %s", cell, device_type, str(exc).splitlines()[0])
        return False
    return True


def resolve_autocast(cfg: dict[str, Any], device: torch.device) -> None:
    """Turn the config's `autocast_bf16` off, with a warning, where this machine cannot run it;
    the saved config then says how the model was really trained."""
    if cfg["autocast_bf16"] and not bf16_autocast_supported(device.type, cfg["cell"]):
        log.warning("autocast_bf16 requested but %s cannot run a bfloat16 %s here; training in float32",
                    device.type, cfg["cell"])
        cfg["autocast_bf16"] = False
