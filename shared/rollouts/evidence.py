"""Live evidence about versions, from the rows: shadow agreement per alias and version, and
per-version job outcomes of a canary split (shadow jobs excluded)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seqserve.shared.db.models import Job, JobStatus
from seqserve.shared.rollouts.tables import SHADOW_TEAM, ShadowRun, ShadowStatus


@dataclass(frozen=True)
class ShadowEvidence:
    jobs: int  # shadow jobs compared
    failed: int  # shadow jobs that failed
    inputs: int
    agreed: int
    agreement_sum: float

    @property
    def agreement(self) -> float | None:
        return self.agreement_sum / self.inputs if self.inputs else None


@dataclass(frozen=True)
class VersionEvidence:
    version: int
    finished: int
    failed: int
    mean_seconds: float | None

    @property
    def failure_ratio(self) -> float | None:
        return self.failed / self.finished if self.finished else None


def shadow(session: Session, model_id: int, alias: str, version_id: int) -> ShadowEvidence:
    runs = ShadowRun
    row = session.execute(
        select(func.count().filter(runs.status == ShadowStatus.compared.value),
               func.count().filter(runs.status == ShadowStatus.failed.value),
               func.coalesce(func.sum(runs.inputs), 0), func.coalesce(func.sum(runs.agreed), 0),
               func.coalesce(func.sum(runs.agreement_sum), 0.0))
        .where(runs.model_id == model_id, runs.alias == alias, runs.shadow_version_id == version_id)
    ).one()
    return ShadowEvidence(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]))


def versions(session: Session, version_ids: Iterable[int], since: datetime | None) -> dict[int, VersionEvidence]:
    """Finished jobs per version id submitted since `since` (the canary's start)."""
    ids = list(version_ids)
    seconds = func.extract("epoch", Job.finished_at - Job.created_at) if session.get_bind().dialect.name == \
        "postgresql" else (func.julianday(Job.finished_at) - func.julianday(Job.created_at)) * 86400.0
    query = (
        select(Job.model_version_id, func.max(Job.version_number), func.count(),
               func.count().filter(Job.status == JobStatus.failed.value), func.avg(seconds))
        .where(Job.model_version_id.in_(ids), Job.team != SHADOW_TEAM,
               Job.status.in_((JobStatus.succeeded.value, JobStatus.failed.value)))
        .group_by(Job.model_version_id)
    )
    if since is not None:
        query = query.where(Job.created_at >= since)
    found = {row[0]: VersionEvidence(int(row[1]), int(row[2]), int(row[3]), None if row[4] is None else float(row[4]))
             for row in session.execute(query)}
    return found
