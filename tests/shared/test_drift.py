"""Drift profiles and their comparison (seqserve.shared.drift)."""

from __future__ import annotations

import pytest

from seqserve.shared import drift


def _profile(texts: list[str], decay: float = 1.0, vocab: frozenset[str] = frozenset({"a", "good", "film"})
             ) -> drift.Profile:
    profile = drift.Profile(decay=decay)
    profile.add_inputs(texts, str.split, vocab.__contains__)
    return profile


def test_same_population_scores_zero_and_another_scores_high() -> None:
    english = _profile(["a good film", "a film"] * 10).summary()
    assert drift.scores(english, english) == {"lengths": pytest.approx(0.0), "chars": pytest.approx(0.0)}
    cyrillic = _profile(["хороший фильм 123 !!", "плохой"] * 10).summary()
    assert cyrillic["oov_ratio"] == 1.0 and english["oov_ratio"] == 0.0
    assert drift.scores(english, cyrillic)["chars"] > 1.0
    assert cyrillic["chars"]["other_letter"] > 0.5 and "digit" in cyrillic["chars"]


def test_a_rolling_profile_forgets_old_inputs() -> None:
    profile = _profile(["a good film"] * 100, decay=0.99)
    profile.add_inputs(["zzz qqq"] * 300, str.split, {"a", "good", "film"}.__contains__)
    assert profile.summary()["oov_ratio"] > 0.9  # the old in-vocabulary inputs weigh ~5%
    assert drift.length_bucket(1) == "le2" and drift.length_bucket(500) == "gt64"


def test_a_reference_carries_label_shares_and_the_label_set() -> None:
    reference = drift.reference(["a film"] * 4, str.split, {"a"}.__contains__, ["positive", "positive", "negative",
                                                                                   "positive"], ["negative", "positive"])
    assert reference["predictions"] == {"positive": 0.75, "negative": 0.25}
    assert reference["labels"] == ["negative", "positive"] and reference["oov_ratio"] == 0.5


def test_a_pretokenized_input_counts_as_its_own_tokens() -> None:
    def no_tokenizer(text: str) -> list[str]:
        raise AssertionError(f"a pretokenized input was tokenized again: {text!r}")

    profile = drift.Profile()
    assert profile.add_inputs([["New", "York", "is", "n't", "far"]], no_tokenizer, {"New", "is"}.__contains__) == [5]
    assert profile.summary()["oov_ratio"] == pytest.approx(3 / 5)


def test_length_ratios_bucket_and_a_language_models_logprob_is_an_aspect() -> None:
    assert [drift.ratio_bucket(out, 10) for out in (5, 10, 11, 30)] == [
        "ratio_le0.5", "ratio_le1.0", "ratio_le1.25", "ratio_gt2.0"]
    assert drift.ratio_bucket(3, 0) == "ratio_gt2.0"  # no source tokens: never a division by zero
    reference = drift.reference(["a b"], str.split, {"a"}.__contains__, [], [], logprobs=[-4.0])
    live = drift.Profile()
    live.add_inputs(["a b"], str.split, {"a"}.__contains__)
    live.add_logprobs([-5.0, -6.0])
    assert drift.scores(reference, live.summary())["logprob"] == pytest.approx(1.5)
    assert "logprob" not in drift.scores({**reference, "mean_logprob": None}, live.summary())
