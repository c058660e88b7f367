"""Turning ragged id lists into the (tokens, lengths) pair the models take."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad to the longest sequence: tokens [B, T] (long), lengths [B] (long, on CPU)."""
    if not sequences:
        raise ValueError("cannot pad an empty batch")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if int(lengths.min()) < 1:
        # Packed sequences cannot hold an empty row; callers substitute <unk> for empty text.
        raise ValueError("every sequence must have at least one token")
    tokens = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    return tokens, lengths
