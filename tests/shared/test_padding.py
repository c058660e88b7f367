"""The numpy paddings against the plain definition: every row's ids, then pad ids."""

from __future__ import annotations

import random

import pytest
import torch

from seqserve.shared.nn.padding import pad_nested, pad_sequences


def _padded(rows: list[list[int]], width: int, pad_id: int) -> list[list[int]]:
    return [row + [pad_id] * (width - len(row)) for row in rows]


@pytest.mark.parametrize("seed", range(5))
def test_pad_sequences_matches_the_definition_on_ragged_rows_in_any_order(seed: int) -> None:
    rng = random.Random(seed)
    rows = [[rng.randrange(0, 2**40) for _ in range(rng.randint(1, 30))] for _ in range(rng.randint(1, 40))]
    tokens, lengths = pad_sequences(rows, pad_id=7)
    width = max(map(len, rows))
    assert tokens.dtype == lengths.dtype == torch.long
    assert tokens.tolist() == _padded(rows, width, 7)
    assert lengths.tolist() == [len(row) for row in rows]


@pytest.mark.parametrize("seed", range(5))
def test_pad_nested_matches_the_definition_in_both_dimensions(seed: int) -> None:
    rng = random.Random(seed)
    rows = [[[rng.randrange(1, 300) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 9))]
            for _ in range(rng.randint(1, 16))]
    chars = pad_nested(rows, pad_id=0)
    words, width = max(map(len, rows)), max(len(item) for row in rows for item in row)
    expected = [_padded(row, width, 0) + [[0] * width] * (words - len(row)) for row in rows]
    assert chars.dtype == torch.long and chars.tolist() == expected


def test_the_paddings_refuse_empty_batches_rows_and_items() -> None:
    with pytest.raises(ValueError, match="empty batch"):
        pad_sequences([], pad_id=0)
    with pytest.raises(ValueError, match="at least one token"):
        pad_sequences([[1], []], pad_id=0)
    with pytest.raises(ValueError, match="empty batch"):
        pad_nested([], pad_id=0)
    with pytest.raises(ValueError, match="at least one word"):
        pad_nested([[[1]], []], pad_id=0)
    with pytest.raises(ValueError, match="at least one character"):
        pad_nested([[[1], []]], pad_id=0)
