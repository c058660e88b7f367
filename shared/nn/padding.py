"""Turning ragged id lists into the (tokens, lengths) pair the models take.

Both paddings gather every id into one flat array and scatter it through a mask in one numpy
step. A tensor write per row was a third of a 1,024-phrase classify preprocess (9.4 ms, against
0.5 ms this way), and the tagger's nested list for torch.tensor half of a tag preprocess
(py-spy and timings in process, docs/benchmarks/backends.md, 2026-12-08)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
import torch
from torch import Tensor


def _lengths(rows: Sequence[Sequence[object]]) -> np.ndarray:
    return np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))


def scatter_rows(lengths: np.ndarray, values: np.ndarray, width: int, pad_id: int) -> np.ndarray:
    """[len(lengths), width, ...]: row i holds the next lengths[i] entries of `values` (in
    order), then `pad_id`."""
    out = np.full((len(lengths), width, *values.shape[1:]), pad_id, dtype=np.int64)
    out[np.arange(width) < lengths[:, None]] = values
    return out


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad to the longest sequence: tokens [B, T] (long), lengths [B] (long, on CPU)."""
    if not sequences:
        raise ValueError("cannot pad an empty batch")
    lengths = _lengths(sequences)
    if int(lengths.min()) < 1:
        # Packed sequences cannot hold an empty row; callers substitute <unk> for empty text.
        raise ValueError("every sequence must have at least one token")
    ids = np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(scatter_rows(lengths, ids, int(lengths.max()), pad_id)), torch.from_numpy(lengths)


def pad_nested(rows: Sequence[Sequence[Sequence[int]]], pad_id: int) -> Tensor:
    """Per row, per item, ids -> [B, T, C] long, right-padded in both T and C (a tagger's
    characters: sentences of words of char ids). Every row and item must hold one id at least."""
    if not rows:
        raise ValueError("cannot pad an empty batch")
    row_lengths = _lengths(rows)
    items = list(chain.from_iterable(rows))
    if int(row_lengths.min()) < 1:
        raise ValueError("every sentence must have at least one word")
    item_lengths = _lengths(items)
    if int(item_lengths.min()) < 1:
        raise ValueError("every word must have at least one character")
    ids = np.fromiter(chain.from_iterable(items), dtype=np.int64, count=int(item_lengths.sum()))
    per_item = scatter_rows(item_lengths, ids, int(item_lengths.max()), pad_id)  # [items, C]
    return torch.from_numpy(scatter_rows(row_lengths, per_item, int(row_lengths.max()), pad_id))
