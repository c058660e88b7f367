"""Live drift statistics per model version, in this inference process: every served batch
updates the version's rolling profile (seqserve.shared.drift) and the exported gauges. A
version registered before references were recorded exports its live statistics and
`seqserve_drift_reference_present 0`, no score."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from seqserve.services.worker.handlers.vectors import WordTable
from seqserve.services.worker.model_cache import VersionInfo
from seqserve.shared import drift
from seqserve.shared.config import get_settings
from seqserve.shared.db.models import ModelVersion
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs.repository import ClaimedJob
from seqserve.shared.metrics import (
    DRIFT_REFERENCE_PRESENT,
    DRIFT_SCORE,
    INPUT_OOV_RATIO,
    INPUT_TOKENS,
    PREDICTION_SHARE,
    REFERENCE_OOV_RATIO,
)
from seqserve.shared.tasks import VECTOR_KIND_NAMES

log = logging.getLogger(__name__)

_SPECIAL_ROWS = 2  # <pad>, <unk>: seqserve.shared.text.vocab


def _predictions(kind: str, result: dict[str, Any], source_tokens: int) -> list[str]:
    if kind == "classify":
        return [str(result["label"])]
    if kind == "tag":
        return [str(tag) for tag in result.get("tags", [])]
    if kind == "translate" and source_tokens:
        return [drift.ratio_bucket(len(result.get("tokens", [])), source_tokens)]
    return []


@dataclass
class _Watched:
    profile: drift.Profile
    reference: dict[str, Any] | None
    table: WordTable | None
    published: float = 0.0  # monotonic time of the last live summary sent to Redis


@dataclass
class DriftMonitor:
    """Owned by the process's WorkerContext; `window` inputs is the rolling window's size."""

    window: int = 1000
    redis: Redis | None = None  # where the API reads the live summaries (None: nowhere)
    per_chunk: int = field(default_factory=lambda: get_settings().drift_inputs_per_chunk)  # of a chunk
    _versions: dict[int, _Watched] = field(default_factory=dict)

    def _watch(self, version: VersionInfo, handler: Any) -> _Watched:
        watched = self._versions.get(version.version_id)
        if watched is None:
            with session_scope() as session:
                row = session.get(ModelVersion, version.version_id)
                reference = row.drift_reference if row is not None else None
            table = handler.word_table() if hasattr(handler, "word_table") else None
            watched = _Watched(drift.Profile(decay=1 - 1 / self.window), reference, table)
            self._versions[version.version_id] = watched
            labels = (version.model_name, str(version.version))
            DRIFT_REFERENCE_PRESENT.labels(*labels).set(1 if reference else 0)
            if reference:
                REFERENCE_OOV_RATIO.labels(*labels).set(reference["oov_ratio"])
        return watched

    def observe_jobs(self, version: VersionInfo, kind: str, handler: Any,
                     jobs: list[tuple[ClaimedJob, list[Any] | None]]) -> None:
        """Count a served batch's jobs and their results; of a corpus batch's chunk, at most
        `per_chunk` inputs spread over it (all of every chunk cost 7% of a worker's time during
        a batch; docs/benchmarks/batches.md)."""
        inputs: list[str] = []
        results: list[Any] = []
        for job, outputs in jobs:
            step = max(1, -(-len(job.inputs) // self.per_chunk)) if job.batch_id is not None else 1  # ceil: per_chunk at most
            inputs += job.inputs[::step]
            results += (outputs or [])[::step]
        self.observe(version, kind, handler, inputs, results)

    def observe(self, version: VersionInfo, kind: str, handler: Any, inputs: list[str],
                results: list[dict[str, Any]]) -> None:
        """Count a served batch's inputs and predictions; never fails the batch."""
        if kind in VECTOR_KIND_NAMES:
            return
        try:
            self._observe(version, kind, handler, inputs, results)
        except Exception:  # statistics must not cost a job its result
            log.exception("drift statistics failed for %s v%s", version.model_name, version.version)

    def _observe(self, version: VersionInfo, kind: str, handler: Any, inputs: list[str],
                 results: list[dict[str, Any]]) -> None:
        watched = self._watch(version, handler)
        if watched.table is None:
            return
        table = watched.table
        lengths = watched.profile.add_inputs(inputs, table.tokenize, lambda t: _known(table, t))
        for count, result in zip(lengths, results, strict=True):
            watched.profile.add_predictions(_predictions(kind, result, count))
            if kind == "score":
                watched.profile.add_logprobs(result.get("token_logprobs", []))
        labels = (version.model_name, str(version.version))
        for count in lengths:
            INPUT_TOKENS.labels(*labels).observe(count)
        live = watched.profile.summary()
        INPUT_OOV_RATIO.labels(*labels).set(live["oov_ratio"])
        for label, share in live["predictions"].items():
            PREDICTION_SHARE.labels(*labels, label).set(share)
        scores = drift.scores(watched.reference, live) if watched.reference else {}
        for aspect, score in scores.items():
            DRIFT_SCORE.labels(*labels, aspect).set(score)
        if self.redis is not None and time.monotonic() - watched.published >= drift.LIVE_PUBLISH_SECONDS:
            drift.publish_live(self.redis, version.version_id, live, scores)
            watched.published = time.monotonic()


def _known(table: WordTable, token: str) -> bool:
    # As the handlers read words: the form, or its lower case, with a row of its own.
    return any(table.vocab.encode([form])[0] >= _SPECIAL_ROWS for form in (token, token.lower()))
