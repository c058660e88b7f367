"""Typed views of the server's JSON: a dataclass per resource and per job kind's result.

Unknown fields are kept in `extra` (a newer server may add some); `raw` is the JSON as sent."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

FINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
ENDED_BATCH_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _build(cls: type[T], data: dict[str, Any], **converted: Any) -> T:
    """`cls` from the JSON object `data`: its known fields (after `converted`), the rest in `extra`."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in data.items() if k in names} | converted
    extra = {k: v for k, v in data.items() if k not in names}
    if "extra" in names:
        values["extra"] = extra
    if "raw" in names:
        values["raw"] = data
    return cls(**values)


@dataclass(frozen=True)
class ClassifyResult:
    label: str
    probabilities: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TagResult:
    tokens: list[str]
    tags: list[str]
    probabilities: list[float]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerateResult:
    continuation: str
    tokens: list[str]
    prompt_tokens: list[str] = field(default_factory=list)
    next_words: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreResult:
    logprob: float
    perplexity: float
    tokens: list[str]
    token_logprobs: list[float]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TranslateResult:
    translation: str
    tokens: list[str]
    score: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VectorResult:
    """`embed` and `similar`: which fields are set depends on the mode (see the server's docs/embeddings.md)."""

    source: str | None = None
    vector: list[float] | None = None
    word: str | None = None
    words: list[str] | None = None
    tokens: list[str] | None = None
    similarity: float | None = None
    neighbours: list[dict[str, Any]] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


RESULT_TYPES: dict[str, type] = {
    "classify": ClassifyResult, "tag": TagResult, "generate": GenerateResult, "score": ScoreResult,
    "translate": TranslateResult, "embed": VectorResult, "similar": VectorResult,
}
Result = ClassifyResult | TagResult | GenerateResult | ScoreResult | TranslateResult | VectorResult


def parse_result(kind: str, entry: Any) -> Any:
    """One input's result, typed for the kind (a kind this client does not know stays a dict)."""
    cls = RESULT_TYPES.get(kind)
    return _build(cls, entry) if cls is not None and isinstance(entry, dict) else entry


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    model: str
    model_name: str
    model_version: int
    status: str
    priority: str
    num_inputs: int
    params: dict[str, Any]
    result: list[Any] | None
    error: str | None
    attempts: int
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, float | None] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_status: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.status in FINAL_JOB_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        result = data.get("result")
        return _build(cls, data, result=None if result is None else [parse_result(data["kind"], r) for r in result],
                      created_at=_time(data.get("created_at")), started_at=_time(data.get("started_at")),
                      finished_at=_time(data.get("finished_at")))


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class ModelVersion:
    version: int
    metrics: dict[str, Any]
    primary_metric: str
    sha256: str
    size_bytes: int
    created_at: datetime | None
    architecture: dict[str, Any] = field(default_factory=dict)
    promotion_note: str = ""
    training_run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    name: str
    task: str
    kinds: list[str]
    aliases: dict[str, int]
    versions: list[ModelVersion]
    created_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Model:
        versions = [_build(ModelVersion, v, created_at=_time(v.get("created_at"))) for v in data.get("versions", [])]
        return _build(cls, data, versions=versions, created_at=_time(data.get("created_at")))


@dataclass(frozen=True)
class Alias:
    model: str
    alias: str
    version: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alias:
        return cls(data["model"], data["alias"], data["version"])


@dataclass(frozen=True)
class AliasState:
    """An alias's live rollout: its version, a promotion warming, the shadow and its agreement,
    the canary arms, the promotion policy, what rollback restores, and the warm workers."""

    model: str
    alias: str
    version: int
    pending_version: int | None = None
    shadow: dict[str, Any] | None = None  # version, rate, jobs, failed, inputs, agreed, agreement
    canary: list[dict[str, Any]] = field(default_factory=list)  # version, weight, finished, failed, ...
    policy: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] | None = None
    warm: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AliasState:
        return _build(cls, data)


@dataclass(frozen=True)
class Promotion:
    """What a promotion on evidence did: moved or not, why, each policy check, the warm-up."""

    promoted: bool
    reason: str
    checks: list[dict[str, Any]]
    state: AliasState
    warm_processes: int = 0
    expected_workers: int = 0
    warm_timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Promotion:
        return _build(cls, data, state=AliasState.from_json(data["state"]))


@dataclass(frozen=True)
class TrainingRun:
    id: str
    model_name: str
    task: str
    preset: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[Any]
    error: str | None
    model_version: int | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    progress: dict[str, Any] | None = None  # inside the current epoch: batches_done/total, eta_s, ...
    cancel_requested_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingRun:
        return _build(cls, data, created_at=_time(data.get("created_at")), started_at=_time(data.get("started_at")),
                      finished_at=_time(data.get("finished_at")),
                      cancel_requested_at=_time(data.get("cancel_requested_at")))


@dataclass(frozen=True)
class File:
    id: str
    filename: str
    bytes: int
    sha256: str
    lines: int
    format: str
    created_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> File:
        return _build(cls, data, created_at=_time(data.get("created_at")))


@dataclass(frozen=True)
class RequestCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0


_BATCH_TIMES = ("created_at", "in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at",
                "cancelled_at", "expires_at")


@dataclass(frozen=True)
class Batch:
    id: str
    kind: str
    model: str
    status: str
    input_file: str
    request_counts: RequestCounts
    model_name: str | None = None
    model_version: int | None = None
    output_file: str | None = None
    error_file: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    priority: str = "low"
    created_at: datetime | None = None
    in_progress_at: datetime | None = None
    finalizing_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    expired_at: datetime | None = None
    cancelled_at: datetime | None = None
    expires_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in ENDED_BATCH_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        counts = data.get("request_counts") or {}
        return _build(cls, data, request_counts=_build(RequestCounts, counts),
                      **{name: _time(data.get(name)) for name in _BATCH_TIMES})


@dataclass(frozen=True)
class Event:
    """One server-sent event of a job's stream: `status`, `token`, `sentence`, `final` or `error`."""

    event: str
    data: Any
    id: str | None = None

    @property
    def job(self) -> Job | None:
        """The whole job, on the `final` event."""
        return Job.from_json(self.data) if self.event == "final" and isinstance(self.data, dict) else None

    @classmethod
    def from_sse(cls, event: str, data: str, id: str | None) -> Event:
        try:
            parsed: Any = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return cls(event or "message", parsed, id or None)
