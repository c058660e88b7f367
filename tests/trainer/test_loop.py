from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from seqserve.services.trainer.loop import LoopConfig, fit


@dataclass
class ToyBatch:
    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> ToyBatch:
        return ToyBatch(self.x.to(device), self.y.to(device))


def _toy_batches() -> list[ToyBatch]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=gen)
    return [ToyBatch(x[i : i + 8], (x[i : i + 8, 0] > 0).long()) for i in range(0, 32, 8)]


def _loss(model: nn.Module, batch: ToyBatch) -> Tensor:
    return nn.functional.cross_entropy(model(batch.x), batch.y)


def _scripted_evaluate(scores: list[float], seen: list[Tensor]):  # type: ignore[no-untyped-def]
    def evaluate(model: nn.Module) -> dict[str, float]:
        seen.append(model.weight.detach().clone())
        return {"accuracy": scores[len(seen) - 1]}

    return evaluate


def test_early_stopping_restores_the_best_epoch() -> None:
    model, seen = nn.Linear(4, 2), []
    cfg = LoopConfig(epochs=10, patience=2, lr=0.05, progress=False)
    records: list[dict] = []
    result = fit(model, _toy_batches, _scripted_evaluate([0.5, 0.7, 0.6, 0.65, 0.9], seen),
                 _loss, cfg, torch.device("cpu"), records.append)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]  # 2 epochs without a new best
    assert result.stopped_early and result.best_epoch == 2
    assert torch.equal(model.weight, seen[1])
    assert records == result.history
    assert set(records[0]) == {"epoch", "train_loss", "dev_accuracy", "lr", "seconds"}
    assert records[0]["train_loss"] > records[-1]["train_loss"]


def test_min_mode_and_plateau_schedule_halve_the_lr() -> None:
    model, seen = nn.Linear(4, 2), []
    cfg = LoopConfig(epochs=3, patience=5, lr=0.1, monitor="accuracy", mode="min", progress=False)
    result = fit(model, _toy_batches, _scripted_evaluate([0.3, 0.4, 0.2], seen), _loss, cfg,
                 torch.device("cpu"))
    assert [r["lr"] for r in result.history] == pytest.approx([0.1, 0.1, 0.05])
    assert result.best_epoch == 3 and not result.stopped_early


def test_missing_monitored_metric_is_an_error() -> None:
    cfg = LoopConfig(epochs=1, monitor="f1", progress=False)
    with pytest.raises(KeyError, match="f1"):
        fit(nn.Linear(4, 2), _toy_batches, lambda m: {"accuracy": 1.0}, _loss, cfg, torch.device("cpu"))


def test_time_budget_stops_before_an_epoch_that_would_overrun_it() -> None:
    import time

    def slow_evaluate(model: nn.Module) -> dict[str, float]:
        time.sleep(0.6)  # each epoch ~0.6 s: after one, another fits in 1.5 s; after two, a third does not
        return {"accuracy": 0.5}

    cfg = LoopConfig(epochs=10, patience=10, lr=0.05, progress=False, time_budget_s=1.5)
    result = fit(nn.Linear(4, 2), _toy_batches, slow_evaluate, _loss, cfg, torch.device("cpu"))
    assert len(result.history) == 2
    assert result.stopped_for_time and not result.stopped_early and result.best_epoch == 1
    with pytest.raises(ValueError, match="time_budget_s"):
        fit(nn.Linear(4, 2), _toy_batches, slow_evaluate, _loss, LoopConfig(time_budget_s=-1), torch.device("cpu"))


def test_weight_average_is_evaluated_and_kept() -> None:
    steps: list[Tensor] = []  # the weights each loss call sees: those after the previous step

    def recording_loss(model: nn.Module, batch: ToyBatch) -> Tensor:
        steps.append(model.weight.detach().clone())
        return _loss(model, batch)

    model, seen = nn.Linear(4, 2), []
    cfg = LoopConfig(epochs=2, patience=5, lr=0.1, schedule="none", progress=False, ema_decay=0.5)
    result = fit(model, _toy_batches, _scripted_evaluate([0.9, 0.1], seen), recording_loss, cfg,
                 torch.device("cpu"))
    per_epoch = len(_toy_batches())
    average = steps[0].clone()  # starts at the initial weights
    for n in range(1, per_epoch + 1):  # decay warmed up as min(d, (1 + n) / (10 + n))
        average = torch.lerp(average, steps[n], 1.0 - min(0.5, (1 + n) / (10 + n)))
    assert torch.allclose(seen[0], average, atol=1e-6)  # epoch 1 was evaluated on the average
    # ...and epoch 2 trained on from the live weights, which differ from it.
    assert not torch.allclose(steps[per_epoch], average, atol=1e-4)
    assert result.best_epoch == 1 and torch.equal(model.weight, seen[0])
    assert torch.equal(result.best_state["weight"], seen[0])
    with pytest.raises(ValueError, match="ema_decay"):
        fit(nn.Linear(4, 2), _toy_batches, lambda m: {"accuracy": 1.0}, _loss, LoopConfig(ema_decay=1.0),
            torch.device("cpu"))
