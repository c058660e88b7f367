"""Classification metric definitions, shared by the trainer and anything that reports them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd inside the block; the caller's mode after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)

Labels = Sequence[int] | Tensor


def _as_tensors(preds: Labels, golds: Labels) -> tuple[Tensor, Tensor]:
    p = torch.as_tensor(preds, dtype=torch.long).flatten().cpu()
    g = torch.as_tensor(golds, dtype=torch.long).flatten().cpu()
    if p.shape != g.shape:
        raise ValueError(f"preds and golds differ in length: {p.numel()} vs {g.numel()}")
    if p.numel() == 0:
        raise ValueError("metrics need at least one example")
    return p, g


def accuracy(preds: Labels, golds: Labels) -> float:
    """Fraction of predictions equal to the gold label."""
    p, g = _as_tensors(preds, golds)
    return (p == g).double().mean().item()


def macro_f1(preds: Labels, golds: Labels, num_classes: int) -> float:
    """Unweighted mean of per-class F1; a class absent from both preds and golds scores 0."""
    p, g = _as_tensors(preds, golds)
    scores = []
    for c in range(num_classes):
        tp = ((p == c) & (g == c)).sum().item()
        fp = ((p == c) & (g != c)).sum().item()
        fn = ((p != c) & (g == c)).sum().item()
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / num_classes
