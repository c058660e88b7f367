"""The data helpers the example-based trainers share: reproducible subsets and epochs."""

from __future__ import annotations

import random

from seqserve.services.trainer.batching import drop_words, length_grouped_epoch, seeded_subset


def test_a_seeded_subset_is_the_same_every_time_and_none_means_all() -> None:
    items = list(range(100))
    assert seeded_subset(items, 10, seed=3) == seeded_subset(items, 10, seed=3) != seeded_subset(items, 10, seed=4)
    assert len(set(seeded_subset(items, 10, seed=3))) == 10
    assert seeded_subset(items, None, seed=3) is items and seeded_subset(items, 500, seed=3) is items


def test_an_epoch_covers_every_row_once_in_batches_of_similar_length() -> None:
    lengths = [random.Random(i).randint(1, 60) for i in range(1000)]
    groups = length_grouped_epoch(len(lengths), 8, lambda i: lengths[i], random.Random(0))
    assert sorted(i for group in groups for i in group) == list(range(1000))
    assert all(1 <= len(group) <= 8 for group in groups)
    # Sorted within pools of 50 batches: a batch spans far less than the whole length range.
    spans = [max(lengths[i] for i in g) - min(lengths[i] for i in g) for g in groups]
    assert sum(spans) / len(spans) < 5
    again = length_grouped_epoch(len(lengths), 8, lambda i: lengths[i], random.Random(0))
    assert again == groups


def test_word_dropout_off_draws_nothing_from_the_generator() -> None:
    # A draw would shift every later shuffle of the run, changing the trained model.
    rng, untouched = random.Random(5), random.Random(5)
    assert drop_words([4, 5, 6], 0.0, rng, unk_id=1) == [4, 5, 6]
    assert rng.random() == untouched.random()
    assert drop_words([4, 5, 6] * 100, 0.999, random.Random(0), unk_id=1).count(1) > 250
