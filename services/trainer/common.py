"""What every task's trainer does besides its data, model, loss and evaluation: resolve the
config, pick the device and threads, run the shared loop, save and describe the checkpoint."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from seqserve.services.trainer.datasets import DataFingerprint, fingerprint
from seqserve.services.trainer.loop import Batch, BatchHook, FitResult, LoopConfig, fit
from seqserve.services.trainer.outcome import TrainOutcome, save_trained
from seqserve.shared.config import get_settings
from seqserve.shared.devices import pick_device
from seqserve.shared.nn.cells import make_rnn
from seqserve.shared.threads import apply_threads
from seqserve.shared.training.configs import Cell
from seqserve.shared.training.presets import resolve_config

log = logging.getLogger("seqserve.train")


@dataclass(frozen=True)
class Objective:
    """The dev metric a task selects epochs on, gates promotion on, and which way is better."""

    metric: str
    mode: Literal["max", "min"]


class NoNewData(Exception):
    """The run's data has the fingerprint it was told to skip (the model's latest version's)."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"no new data: dataset fingerprint {digest[:12]} equals the latest version's")
        self.digest = digest


@dataclass(frozen=True)
class TrainingSetup:
    """One train_* call's resolved config (a plain dict, as checkpoints record it), device and
    loop hooks; `fit` and `save` are the two steps every task ends with."""

    task: str
    cfg: dict[str, Any]
    device: torch.device
    objective: Objective
    progress: bool = True
    on_epoch: Callable[[dict[str, float]], None] | None = None
    on_batch: BatchHook | None = None  # progress and cancellation (services/trainer/monitor.py)
    # A scheduled run: stop before training when the data's fingerprint equals this one.
    unchanged_fingerprint: str | None = None

    def fingerprint(self, paths: list[Path]) -> DataFingerprint:
        """The data files' fingerprint; NoNewData when it is `unchanged_fingerprint`."""
        data = fingerprint(paths)
        if data.digest == self.unchanged_fingerprint:
            raise NoNewData(data.digest)
        return data

    def fit(
        self,
        model: nn.Module,
        train_batches: Callable[[], Iterable[Batch]],
        evaluate: Callable[[nn.Module], dict[str, float]],
        loss_fn: Callable[[nn.Module, Any], Tensor],
    ) -> FitResult:
        loop = loop_config(self.cfg, self.progress, self.objective.metric, self.objective.mode)
        return fit(model, train_batches, evaluate, loss_fn, loop, self.device, self.on_epoch, self.on_batch)

    def save(
        self,
        model: nn.Module,
        extras: dict[str, Any],
        result: FitResult,
        metrics: dict[str, float],
        data: DataFingerprint,
        out_path: Path,
        run_info: dict[str, Any] | None = None,
    ) -> TrainOutcome:
        return save_trained(self.task, model, extras, self.cfg, result, metrics, data, out_path,
                            self.objective.metric, run_info)


@dataclass(frozen=True)
class TaskTrainer:
    """A task's `train_*` function: resolves the config and the device, then runs `body`, the
    part only the task knows (its data, model, loss and evaluation)."""

    task: str
    objective: Objective
    body: Callable[[TrainingSetup, Path, Path], TrainOutcome]  # (setup, data_dir, out_path)

    def __call__(
        self,
        data_dir: Path,
        out_path: Path,
        preset: str = "quick",
        overrides: dict[str, Any] | None = None,
        device: torch.device | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        progress: bool = True,
        unchanged_fingerprint: str | None = None,
        on_batch: BatchHook | None = None,
    ) -> TrainOutcome:
        """Train on `data_dir`, write the checkpoint to `out_path` and curve.png beside it
        (NoNewData, before any training, when the data's fingerprint is `unchanged_fingerprint`)."""
        cfg = resolve_config(self.task, preset, overrides)  # OverrideError names a bad key
        setup = TrainingSetup(self.task, cfg, training_device(device), self.objective, progress, on_epoch,
                              unchanged_fingerprint=unchanged_fingerprint, on_batch=on_batch)
        return self.body(setup, Path(data_dir), Path(out_path))


def default_device() -> torch.device:
    return pick_device(get_settings().device)


def training_device(device: torch.device | None) -> torch.device:
    """The device to train on (given, else from settings), after applying the thread setting."""
    apply_threads("trainer")
    return device or default_device()


def loop_config(cfg: dict[str, Any], progress: bool, monitor: str, mode: Literal["max", "min"]) -> LoopConfig:
    """The training loop's settings from a resolved config (every task's config carries these)."""
    return LoopConfig(
        epochs=cfg["epochs"], lr=cfg["lr"], weight_decay=cfg["weight_decay"], clip=cfg["clip"],
        patience=cfg["patience"], monitor=monitor, mode=mode, schedule=cfg["schedule"],
        lr_factor=cfg["lr_factor"], lr_patience=cfg["lr_patience"], seed=cfg["seed"], progress=progress,
        time_budget_s=60.0 * cfg["time_budget_minutes"], ema_decay=cfg["ema_decay"],
    )


@functools.cache
def bf16_autocast_supported(device_type: str, cell: Cell) -> bool:
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
