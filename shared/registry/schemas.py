"""Registry response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from seqserve.shared.db.models import Model
from seqserve.shared.jobs.kinds import kinds_for_task


class EmbeddingsSummary(BaseModel):
    """What an embeddings version is, read from what its row already stores."""

    vocab_size: int
    dim: int
    subwords: bool  # fastText n-grams: unseen words get vectors too
    probe_neighbours: dict[str, list[Any]]


def embeddings_summary(version: Any) -> EmbeddingsSummary:
    architecture, metrics = version.architecture, version.metrics
    return EmbeddingsSummary(vocab_size=architecture["vocab_size"], dim=architecture["dim"],
                             subwords=bool(architecture.get("bucket")),
                             probe_neighbours=metrics.get("probe_neighbours", {}))


def artifact_urls(model_name: str, version: int, stored: dict[str, Any]) -> dict[str, str]:
    """The API's routes to a version's files (services/api/models/artifacts.py), in place of
    the paths the trainer stored: an answer never shows the server's file layout."""
    base = f"/v1/models/{model_name}/versions/{version}"
    urls = {"checkpoint": f"{base}/checkpoint"}
    if "training_curve" in stored:
        urls["training_curve"] = f"{base}/curve.png"
    return urls


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    metrics: dict[str, Any]
    primary_metric: str
    architecture: dict[str, Any]
    sha256: str
    size_bytes: int
    dataset_fingerprint: str
    code_version: str
    artifacts: dict[str, str] = Field(
        description="URLs of this version's files on this API (`training_curve`: a PNG, `checkpoint`: needs models:write); "
                    "never a server path.")
    promotion_note: str
    training_run_id: uuid.UUID | None
    created_at: datetime
    # The embeddings version a classifier or tagger was initialised from (name:version).
    pretrained_from: str | None = None
    embeddings: EmbeddingsSummary | None = None  # embeddings models only

    @classmethod
    def from_row(cls, version: Any, task: str, model_name: str) -> VersionRead:
        read = cls.model_validate(version)
        pretrained = (version.train_config or {}).get("pretrained_version")
        summary = embeddings_summary(version) if task == "embeddings" else None
        return read.model_copy(update={"pretrained_from": pretrained, "embeddings": summary,
                                       "artifacts": artifact_urls(model_name, version.version, version.artifacts)})


class ModelRead(BaseModel):
    name: str
    task: str
    kinds: list[str]
    aliases: dict[str, int]
    versions: list[VersionRead]
    created_at: datetime

    @classmethod
    def from_row(cls, model: Model) -> ModelRead:
        return cls(
            name=model.name,
            task=model.task,
            kinds=kinds_for_task(model.task),
            aliases={alias.alias: alias.version.version for alias in model.aliases},
            versions=[VersionRead.from_row(v, model.task, model.name) for v in model.versions],
            created_at=model.created_at,
        )
