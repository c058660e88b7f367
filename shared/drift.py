"""Input and prediction statistics for drift: the same profile computed at training time on
dev (the version's reference, kept in its checkpoint and registry row) and live by the
worker over a rolling window of what it serves, compared by population stability index.

PSI over shares p (reference) and q (live): sum (q - p) * ln(q / p), each share floored at
1e-4. The usual reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 a real change.
Torch-free: the trainer and the worker both import it.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Token counts: bucket i holds lengths up to LENGTH_BUCKETS[i]; the last one everything longer.
LENGTH_BUCKETS = (2, 4, 8, 16, 32, 64)
CHAR_CLASSES = ("ascii_letter", "other_letter", "digit", "space", "punct", "other")
_FLOOR = 1e-4


def length_bucket(tokens: int) -> str:
    for bound in LENGTH_BUCKETS:
        if tokens <= bound:
            return f"le{bound}"
    return f"gt{LENGTH_BUCKETS[-1]}"


# Translate's prediction profile: output tokens per source token, in these buckets (a
# translator that drifts out of domain stops early or babbles on).
RATIO_BUCKETS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def ratio_bucket(output_tokens: int, source_tokens: int) -> str:
    ratio = output_tokens / max(source_tokens, 1)
    for bound in RATIO_BUCKETS:
        if ratio <= bound:
            return f"ratio_le{bound}"
    return f"ratio_gt{RATIO_BUCKETS[-1]}"


def char_class(char: str) -> str:
    if char.isascii() and char.isalpha():
        return "ascii_letter"
    if char.isalpha():
        return "other_letter"
    if char.isdigit():
        return "digit"
    if char.isspace():
        return "space"
    return "punct" if unicodedata.category(char).startswith(("P", "S")) else "other"


def psi(reference: dict[str, float], live: dict[str, float]) -> float:
    keys = set(reference) | set(live)
    total = 0.0
    for key in keys:
        p, q = max(reference.get(key, 0.0), _FLOOR), max(live.get(key, 0.0), _FLOOR)
        total += (q - p) * math.log(q / p)
    return total


def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: value / total for key, value in counts.items()} if total > 0 else {}


@dataclass
class Profile:
    """Counts of one population of inputs and predictions. `decay` < 1 makes it a rolling
    window: every input first scales the old counts by it (about 1 / (1 - decay) inputs)."""

    decay: float = 1.0
    inputs: float = 0.0
    tokens: float = 0.0
    oov: float = 0.0
    lengths: dict[str, float] = field(default_factory=dict)
    chars: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, float] = field(default_factory=dict)
    logprob_sum: float = 0.0
    logprob_tokens: float = 0.0

    def _age(self, n: int) -> None:
        if self.decay >= 1.0 or n == 0:
            return
        factor = self.decay ** n
        self.inputs, self.tokens, self.oov = self.inputs * factor, self.tokens * factor, self.oov * factor
        self.logprob_sum, self.logprob_tokens = self.logprob_sum * factor, self.logprob_tokens * factor
        for table in (self.lengths, self.chars, self.predictions):
            for key in table:
                table[key] *= factor

    def add_inputs(self, texts: Sequence[str | list[str]], tokenize: Callable[[str], list[str]],
                   known: Callable[[str], bool]) -> list[int]:
        """Count texts (a pretokenized input, as a corpus batch's CoNLL-U sentences, is its own
        tokens); returns their token counts (for a length histogram)."""
        self._age(len(texts))
        counts = []
        for given in texts:
            tokens = list(given) if isinstance(given, list) else tokenize(given)
            text = " ".join(given) if isinstance(given, list) else given
            counts.append(len(tokens))
            self.inputs += 1
            self.tokens += len(tokens)
            self.oov += sum(1 for token in tokens if not known(token))
            bucket = length_bucket(len(tokens))
            self.lengths[bucket] = self.lengths.get(bucket, 0.0) + 1
            for char in text:
                name = char_class(char)
                self.chars[name] = self.chars.get(name, 0.0) + 1
        return counts

    def add_predictions(self, labels: Iterable[str]) -> None:
        for label in labels:
            self.predictions[label] = self.predictions.get(label, 0.0) + 1

    def add_logprobs(self, logprobs: Iterable[float]) -> None:
        for value in logprobs:
            self.logprob_sum += value
            self.logprob_tokens += 1

    def summary(self) -> dict[str, Any]:
        """The profile as shares (what a version's `drift_reference` holds)."""
        return {
            "inputs": round(self.inputs),
            "oov_ratio": self.oov / self.tokens if self.tokens else 0.0,
            "lengths": _shares(self.lengths),
            "chars": _shares(self.chars),
            "predictions": _shares(self.predictions),
            "mean_logprob": self.logprob_sum / self.logprob_tokens if self.logprob_tokens else None,
        }


def scores(reference: dict[str, Any], live: dict[str, Any]) -> dict[str, float]:
    """PSI per aspect (lengths, chars, predictions) of a live summary against a reference, and
    for a language model "logprob": how many nats per token less likely live text is than dev
    (0.25, the alert's bound, is perplexity up by e^0.25, about 1.28x)."""
    found = {aspect: psi(reference.get(aspect) or {}, live[aspect])
             for aspect in ("lengths", "chars", "predictions") if live[aspect] and reference.get(aspect)}
    if live.get("mean_logprob") is not None and reference.get("mean_logprob") is not None:
        found["logprob"] = reference["mean_logprob"] - live["mean_logprob"]
    return found


def reference(texts: list[str], tokenize: Callable[[str], list[str]], known: Callable[[str], bool],
              predictions: Iterable[str], labels: list[str], logprobs: Iterable[float] = ()) -> dict[str, Any]:
    """A version's reference: its dev inputs' profile, its dev predictions' shares, and the
    label (or tag) set it predicts from."""
    profile = Profile()
    profile.add_inputs(texts, tokenize, known)
    profile.add_predictions(predictions)
    profile.add_logprobs(logprobs)
    return {**profile.summary(), "labels": list(labels)}


# The worker's latest live summary per version, for the API (GET /v1/models/{name}/drift): one
# Redis key per version, rewritten at most every LIVE_PUBLISH_SECONDS, gone an hour after the
# version last served.
LIVE_PUBLISH_SECONDS = 2.0
_LIVE_TTL_SECONDS = 3600


def live_key(version_id: int) -> str:
    return f"seqserve:drift:{version_id}"


def publish_live(redis: Any, version_id: int, live: dict[str, Any], scores: dict[str, float]) -> None:
    redis.set(live_key(version_id), json.dumps({"live": live, "scores": scores}), ex=_LIVE_TTL_SECONDS)


def read_live(redis: Any, version_id: int) -> dict[str, Any] | None:
    raw = redis.get(live_key(version_id)) if redis is not None else None
    return json.loads(raw) if raw else None
