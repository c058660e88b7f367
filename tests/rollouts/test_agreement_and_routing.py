"""Per-input agreement per kind, and the submit path's hashes: a canary split in proportion
to its weights and sticky per key, a shadow sample deterministic per job id."""

from __future__ import annotations

import math
import uuid

import pytest

from seqserve.shared.rollouts.agreement import AGREE_AT, agreements
from seqserve.shared.rollouts.routing import CanaryArm, canary_arm, shadow_sampled


def test_classify_agrees_on_the_same_label_only() -> None:
    production = [{"label": "positive"}, {"label": "negative"}]
    assert agreements("classify", production, [{"label": "positive"}, {"label": "positive"}]) == [1.0, 0.0]


def test_tag_agreement_is_the_share_of_equal_tags() -> None:
    production = [{"tags": ["DET", "NOUN", "VERB", "ADV"]}, {"tags": []}]
    shadow = [{"tags": ["DET", "NOUN", "NOUN", "ADV"]}, {"tags": []}]
    assert agreements("tag", production, shadow) == [0.75, 1.0]


def test_translate_agreement_is_sentence_bleu_against_production() -> None:
    production = [{"translation": "ein mann fährt fahrrad ."}, {"translation": "zwei kinder spielen im park ."}]
    shadow = [{"translation": "ein mann fährt fahrrad ."}, {"translation": "ein hund läuft ."}]
    same, different = agreements("translate", production, shadow)
    assert same == 1.0 and different < AGREE_AT


def test_score_agreement_falls_with_the_per_token_logprob_difference() -> None:
    production = [{"logprob": -10.0, "token_logprobs": [-5.0, -5.0]}] * 2
    shadow = [{"logprob": -10.0}, {"logprob": -12.0}]
    assert agreements("score", production, shadow) == pytest.approx([1.0, math.exp(-1.0)])


def test_canary_split_follows_the_weights_and_sticks_per_key() -> None:
    arms = (CanaryArm(10, 3, 90), CanaryArm(11, 4, 10))
    picks = [canary_arm(arms, "m", "production", f"key-{n}").number for n in range(5000)]
    assert picks.count(4) / len(picks) == pytest.approx(0.10, abs=0.02)  # 5 standard deviations
    assert {canary_arm(arms, "m", "production", "key-7").number for _ in range(10)} == {picks[7]}
    assert canary_arm((CanaryArm(10, 3, 0), CanaryArm(11, 4, 5)), "m", "production", "any").number == 4


def test_shadow_sampling_is_deterministic_per_job_id_at_the_rate() -> None:
    ids = [uuid.UUID(int=n * 7919 + 1) for n in range(4000)]
    sampled = [shadow_sampled(job_id, 0.25) for job_id in ids]
    assert sum(sampled) / len(sampled) == pytest.approx(0.25, abs=0.035)
    assert sampled == [shadow_sampled(job_id, 0.25) for job_id in ids]
    assert not any(shadow_sampled(job_id, 0.0) for job_id in ids[:100])
    assert all(shadow_sampled(job_id, 1.0) for job_id in ids[:100])
