from __future__ import annotations

import pytest
import torch

from seqserve.shared.nn.evaluation import accuracy, macro_f1


def test_accuracy() -> None:
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert accuracy(torch.tensor([2, 2]), torch.tensor([2, 2])) == 1.0


def test_macro_f1_averages_classes_equally() -> None:
    # class 0: tp=1 fp=0 fn=1 -> 2/3; class 1: tp=2 fp=1 fn=0 -> 4/5
    assert macro_f1([0, 1, 1, 1], [0, 0, 1, 1], num_classes=2) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_metrics_reject_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        accuracy([1, 0], [1])
