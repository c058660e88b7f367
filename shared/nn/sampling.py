"""Choosing the next token from a batch of logits: greedy, temperature, top-k and nucleus."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """logits [B, V] -> next ids [B] long.

    temperature 0 is greedy (argmax; top_k and top_p then change nothing). Otherwise the
    logits are divided by the temperature, cut to the `top_k` likeliest ids (0 = no cut) and
    to the smallest set whose probability reaches `top_p` (1 = no cut), then sampled with
    `generator` (which must live on the logits' device).
    """
    if temperature < 0 or top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"bad sampling settings: temperature={temperature}, top_k={top_k}, top_p={top_p}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B, V], got shape {tuple(logits.shape)}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    if top_k > 0:
        scaled = filter_top_k(scaled, top_k)
    if top_p < 1.0:
        scaled = filter_top_p(scaled, top_p)
    probabilities = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


def filter_top_k(logits: Tensor, k: int) -> Tensor:
    """logits [B, V] with everything below each row's k-th largest value set to -inf."""
    k = min(k, logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[:, -1:]  # [B, 1]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def filter_top_p(logits: Tensor, p: float) -> Tensor:
    """logits [B, V] keeping, per row, the likeliest ids until their probability reaches p."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probabilities = torch.softmax(sorted_logits, dim=-1)
    # Drop an id when the ids ranked above it already hold p; the top id always stays.
    drop_sorted = (probabilities.cumsum(dim=-1) - probabilities) >= p
    drop_sorted[:, 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))
