"""The one training loop, shared by every task (classifier now, taggers and LMs later).

Task code supplies three callables: fresh training batches per epoch, a loss for one batch,
and a dev evaluation returning named metrics. The loop owns the optimiser, clipping, the LR
schedule, early stopping on `cfg.monitor`, and keeping the best weights.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import torch
from torch import Tensor, nn
from tqdm import tqdm

from seqserve.shared.training.configs import Schedule

log = logging.getLogger("seqserve.train")


class Batch(Protocol):
    """What the loop needs of a batch; everything else is between the task's callables."""

    def __len__(self) -> int: ...  # examples (sentences) in the batch: loss weighting, throughput

    def to(self, device: torch.device) -> Batch: ...  # lengths for packing must stay on the CPU


@dataclass(frozen=True)
class LoopConfig:
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip: float = 5.0  # max global gradient norm; <= 0 disables clipping
    patience: int = 3  # epochs without a new best dev metric before stopping
    monitor: str = "accuracy"  # key of the dict `evaluate` returns
    mode: Literal["max", "min"] = "max"
    # "plateau": multiply the LR by lr_factor after lr_patience epochs without improvement.
    # "linear": decay the LR linearly per epoch from lr towards 0. "none": constant.
    schedule: Schedule = "plateau"
    lr_factor: float = 0.5
    lr_patience: int = 0
    seed: int = 0
    progress: bool = True
    # Wall-clock budget for the epochs, in seconds; 0 means none. An epoch starts only if the
    # mean epoch time so far says it ends within the budget, so a run on a slow machine stops
    # at the best weights it reached instead of running for hours (the first epoch always runs).
    time_budget_s: float = 0.0
    # Polyak averaging: dev evaluation and the kept weights use an exponential moving average
    # of the weights over training steps (this decay per step, warmed up as in TensorFlow's
    # ExponentialMovingAverage) instead of the last step's; 0 turns it off.
    ema_decay: float = 0.0


@dataclass(frozen=True)
class BatchTick:
    """Where an epoch stands after a training step: what `on_batch` hooks see (progress,
    cancellation); a hook that raises stops the run there."""

    epoch: int
    epochs: int
    done: int  # batches of this epoch done
    total: int | None  # batches in this epoch, when the batches are a sized collection
    examples: int  # examples of this epoch done
    elapsed: float  # seconds since the epoch started


BatchHook = Callable[[BatchTick], None]


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_metrics: dict[str, float]
    stopped_early: bool  # patience ran out
    best_state: dict[str, Tensor] = field(repr=False)
    stopped_for_time: bool = False  # the time budget left no room for another epoch


def fit(
    model: nn.Module,
    train_batches: Callable[[], Iterable[Batch]],
    evaluate: Callable[[nn.Module], dict[str, float]],
    loss_fn: Callable[[nn.Module, Batch], Tensor],
    cfg: LoopConfig,
    device: torch.device,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    on_batch: BatchHook | None = None,
) -> FitResult:
    """Train `model` in place; on return it holds the weights of its best dev epoch."""
    _check_config(cfg)
    torch.manual_seed(cfg.seed)  # dropout masks; batch order is the train_batches' own business
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _make_scheduler(optimizer, cfg)
    average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    history: list[dict[str, float]] = []
    best: tuple[int, dict[str, float], dict[str, Tensor]] | None = None
    stopped_early = stopped_for_time = False
    fit_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        train_loss = _train_epoch(model, train_batches(), loss_fn, optimizer, cfg, device, epoch, average, on_batch)
        with average.swapped_in() if average is not None else nullcontext():
            metrics = _evaluate(model, evaluate, cfg.monitor)
            if best is None or _better(metrics[cfg.monitor], best[1][cfg.monitor], cfg.mode):
                best = (epoch, metrics, _copy_state(model))
        record = {"epoch": epoch, "train_loss": train_loss}
        record |= {f"dev_{name}": value for name, value in metrics.items()}
        record |= {"lr": lr, "seconds": time.perf_counter() - start}
        history.append(record)
        # Progress for logs and non-tty runs (the tqdm bar shows only on a terminal).
        log.info("epoch %d/%d: %s", epoch, cfg.epochs,
                 ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
        _step_scheduler(scheduler, metrics[cfg.monitor])
        if on_epoch is not None:
            on_epoch(dict(record))
        if epoch == cfg.epochs:
            break
        assert best is not None  # set by the first evaluation
        if epoch - best[0] >= cfg.patience:
            stopped_early = True
            break
        if _out_of_time(time.perf_counter() - fit_start, epoch, cfg.time_budget_s):
            log.info("stopping after epoch %d/%d: another epoch would overrun the %.0f s time budget",
                     epoch, cfg.epochs, cfg.time_budget_s)
            stopped_for_time = True
            break
    assert best is not None  # epochs >= 1 is checked above
    model.load_state_dict(best[2])
    return FitResult(history, best[0], best[1], stopped_early, best[2], stopped_for_time)


def _out_of_time(elapsed: float, epochs_done: int, budget: float) -> bool:
    """Whether one more epoch of the mean length so far would end past the budget."""
    return budget > 0 and elapsed + elapsed / epochs_done > budget


def _check_config(cfg: LoopConfig) -> None:
    if cfg.epochs < 1 or cfg.patience < 1:
        raise ValueError(f"epochs and patience must be >= 1 (got {cfg.epochs}, {cfg.patience})")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1) (0: no averaging), got {cfg.ema_decay}")
    if cfg.time_budget_s < 0:
        raise ValueError(f"time_budget_s must be >= 0 (0: no budget), got {cfg.time_budget_s}")
    if cfg.mode not in ("max", "min") or cfg.schedule not in get_args(Schedule):
        raise ValueError(f"bad mode {cfg.mode!r} or schedule {cfg.schedule!r}")


def _train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: Callable[[nn.Module, Batch], Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: LoopConfig,
    device: torch.device,
    epoch: int,
    average: WeightAverage | None = None,
    on_batch: BatchHook | None = None,
) -> float:
    """One pass over `batches`; returns the example-weighted mean training loss."""
    model.train()
    total_loss, examples, start = 0.0, 0, time.perf_counter()
    count = len(batches) if isinstance(batches, Sized) else None
    bar = tqdm(
        batches,
        total=count,
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        leave=False,
        disable=not cfg.progress or not sys.stderr.isatty(),
    )
    for step, batch in enumerate(bar, start=1):
        loss = loss_fn(model, batch.to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss.item()} at epoch {epoch} step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        if average is not None:
            average.update()
        total_loss += loss.item() * len(batch)
        examples += len(batch)
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{total_loss / examples:.4f}", sent_per_s=f"{examples / max(elapsed, 1e-9):.0f}",
                        refresh=False)
        if on_batch is not None:
            on_batch(BatchTick(epoch, cfg.epochs, step, count, examples, elapsed))
    bar.close()
    if examples == 0:
        raise ValueError(f"epoch {epoch} produced no training batches")
    return total_loss / examples


class WeightAverage:
    """Exponential moving average of a model's parameters, updated after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    def update(self) -> None:
        # Early on the average would remember the random initialisation: the effective decay
        # grows from about 0.2 towards `decay` as (1 + n) / (10 + n).
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            for shadow, param in zip(self.shadow, self.params, strict=True):
                shadow.lerp_(param.detach(), 1.0 - decay)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its training weights after."""
        live = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for param, shadow in zip(self.params, self.shadow, strict=True):
                param.copy_(shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, saved in zip(self.params, live, strict=True):
                    param.copy_(saved)


def _evaluate(
    model: nn.Module, evaluate: Callable[[nn.Module], dict[str, float]], monitor: str
) -> dict[str, float]:
    model.eval()
    with torch.inference_mode():
        metrics = {name: float(value) for name, value in evaluate(model).items()}
    if monitor not in metrics or math.isnan(metrics[monitor]):
        raise KeyError(f"evaluate() must return a number for the monitored metric {monitor!r}")
    return metrics


def _better(value: float, best: float, mode: str) -> bool:
    return value > best if mode == "max" else value < best


def _copy_state(model: nn.Module) -> dict[str, Tensor]:
    # A detached CPU copy: the live tensors keep changing as training goes on.
    return {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()}


def _make_scheduler(optimizer: torch.optim.Optimizer, cfg: LoopConfig) -> Any:
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=cfg.mode, factor=cfg.lr_factor, patience=cfg.lr_patience
        )
    if cfg.schedule == "linear":
        # Per epoch: epoch e (0-based) trains at lr * (1 - e / epochs), never reaching 0.
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: max(1.0 - e / cfg.epochs, 0.0))
    return None


def _step_scheduler(scheduler: Any, monitored: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    elif scheduler is not None:
        scheduler.step()
