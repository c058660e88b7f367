"""Training-data helpers the example-based tasks (classify, tag, translate) share.

Each takes the caller's seeded `random.Random`, and the order of its draws is part of what
makes a run reproducible: same seed, same subset, same batches, same checkpoint.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def seeded_subset(items: list[T], limit: int | None, seed: int) -> list[T]:
    """`limit` items drawn with `seed` (for smoke runs), or all of them."""
    if limit is None or limit >= len(items):
        return items
    return random.Random(seed).sample(items, limit)


def length_grouped_epoch(count: int, size: int, length: Callable[[int], Any], rng: random.Random) -> list[list[int]]:
    """One epoch's batches of row indices: shuffled, then sorted by `length` within pools of
    50 batches so a batch holds similar lengths (less padding work) yet batches still vary
    from epoch to epoch; the batch order is shuffled too."""
    order = rng.sample(range(count), count)
    pool = size * 50
    groups = []
    for start in range(0, count, pool):
        chunk = sorted(order[start : start + pool], key=length)
        groups += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(groups)
    return groups


def drop_words(ids: Sequence[int], p: float, rng: random.Random, unk_id: int) -> list[int]:
    """Word dropout: each id becomes `unk_id` with chance `p`, so <unk> gets trained."""
    if p <= 0:  # no draws at all: they would shift every later shuffle of the run
        return list(ids)
    return [unk_id if rng.random() < p else i for i in ids]


def mix_feedback(corrections: list[T], cfg: dict[str, Any]) -> list[T]:
    """The mixing policy (FeedbackMix): the newest `feedback_max_examples` corrections (files
    list them oldest first), each `feedback_repeat` times, so a few hundred corrections weigh
    against tens of thousands of training examples."""
    newest = corrections[-cfg["feedback_max_examples"]:]
    return [example for example in newest for _ in range(cfg["feedback_repeat"])]
