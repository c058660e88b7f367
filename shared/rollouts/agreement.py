"""Per-input agreement of a shadow version's answer with production's, in [0, 1].

classify: 1 when the labels match. tag: the share of positions with the same tag.
translate / generate: sentence BLEU of the shadow output against production's (sacrebleu,
the BLEU the trainer reports), / 100. score: exp(-|difference of the mean per-token
log-probability|), so identical scores agree 1.0 and half a nat per token 0.61.
An input counts as agreeing (`agreed`, the Prometheus `agree="true"`) at AGREE_AT or above.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import sacrebleu

AGREE_AT = 0.5


def _label(production: dict[str, Any], shadow: dict[str, Any]) -> float:
    return 1.0 if production["label"] == shadow["label"] else 0.0


def _tags(production: dict[str, Any], shadow: dict[str, Any]) -> float:
    ours, theirs = production["tags"], shadow["tags"]
    positions = max(len(ours), len(theirs))
    if positions == 0:
        return 1.0
    return sum(a == b for a, b in zip(ours, theirs, strict=False)) / positions


def _bleu(field: str) -> Callable[[dict[str, Any], dict[str, Any]], float]:
    def agreement(production: dict[str, Any], shadow: dict[str, Any]) -> float:
        reference, hypothesis = production[field], shadow[field]
        if reference == hypothesis:
            return 1.0  # also two empty outputs, which BLEU scores 0
        return float(sacrebleu.sentence_bleu(hypothesis, [reference]).score) / 100.0

    return agreement


def _score(production: dict[str, Any], shadow: dict[str, Any]) -> float:
    tokens = max(1, len(production.get("token_logprobs") or []))
    return math.exp(-abs(float(production["logprob"]) - float(shadow["logprob"])) / tokens)


COMPARERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], float]] = {
    "classify": _label,
    "tag": _tags,
    "translate": _bleu("translation"),
    "generate": _bleu("continuation"),
    "score": _score,
}
SHADOW_KINDS = frozenset(COMPARERS)  # kinds a shadow can be compared on; others are never sampled


def agreements(kind: str, production: list[Any], shadow: list[Any]) -> list[float]:
    """One agreement per input of a job answered by both versions."""
    compare = COMPARERS[kind]
    return [compare(ours, theirs) for ours, theirs in zip(production, shadow, strict=True)]
