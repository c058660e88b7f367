"""The submit path's one question to rollouts: which version does this job get, and does
a shadow version answer it too? Decided once, at submission, from hashes: a canary split is
sticky per routing key (or Idempotency-Key), a shadow sample is deterministic per job id."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from seqserve.shared.db.models import Model, ModelVersion
from seqserve.shared.registry.refs import ModelRef
from seqserve.shared.rollouts.agreement import SHADOW_KINDS
from seqserve.shared.rollouts.tables import AliasRollout, ShadowRun, ShadowStatus


@dataclass(frozen=True)
class CanaryArm:
    version_id: int
    number: int
    weight: int


@dataclass(frozen=True)
class RolloutConfig:
    """An alias's routing, as the API caches it (`alias_cache_seconds`, like resolutions)."""

    model_id: int
    alias: str
    shadow_version_id: int | None
    shadow_rate: float
    canary: tuple[CanaryArm, ...]


@dataclass(frozen=True)
class Route:
    version_id: int
    number: int
    shadow_version_id: int | None = None  # set: the job is sampled for this shadow version
    model_id: int = 0
    alias: str = ""


class ConfigCache(Protocol):
    def get(self, key: str, ttl: float, compute: Callable[[], RolloutConfig | None]) -> RolloutConfig | None: ...


def fraction(*parts: str) -> float:
    """A uniform number in [0, 1) from the parts' sha256: the same parts, the same number."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def shadow_sampled(job_id: uuid.UUID, rate: float) -> bool:
    return fraction("shadow", str(job_id)) < rate


def canary_arm(arms: tuple[CanaryArm, ...], model: str, alias: str, sticky_key: str) -> CanaryArm:
    """The arm `sticky_key` falls in: arms cover [0, 1) in proportion to their weights."""
    point = fraction("canary", model, alias, sticky_key) * sum(arm.weight for arm in arms)
    for arm in arms:
        if point < arm.weight:
            return arm
        point -= arm.weight
    return arms[-1]


def load_config(session: Session, model_name: str, alias: str) -> RolloutConfig | None:
    row = session.execute(
        select(AliasRollout).join(Model, Model.id == AliasRollout.model_id)
        .where(Model.name == model_name, AliasRollout.alias == alias)
    ).scalar_one_or_none()
    if row is None or (row.shadow_version_id is None and not row.canary):
        return None
    arms: tuple[CanaryArm, ...] = ()
    if row.canary:
        numbers = {int(number): int(weight) for number, weight in row.canary.items()}
        versions = session.execute(select(ModelVersion.id, ModelVersion.version).where(
            ModelVersion.model_id == row.model_id, ModelVersion.version.in_(numbers))).all()
        arms = tuple(CanaryArm(v.id, v.version, numbers[v.version]) for v in sorted(versions, key=lambda v: v.version)
                     if numbers[v.version] > 0)
    return RolloutConfig(row.model_id, alias, row.shadow_version_id, row.shadow_rate if row.shadow_version_id else 0.0,
                         arms)


def route(session: Session, cache: ConfigCache, ttl: float, ref: ModelRef, version_id: int, number: int,
          job_id: uuid.UUID, kind: str, sticky_key: str) -> Route:
    """The version a new job runs on (the alias's, or its canary arm's) and its shadow, if
    sampled. A reference to a fixed version (`name:3`) is never split nor shadowed."""
    if ref.version is not None or ref.alias is None:
        return Route(version_id, number)
    alias = ref.alias
    config = cache.get(f"{ref.name}@{alias}", ttl, lambda: load_config(session, ref.name, alias))
    if config is None:
        return Route(version_id, number)
    if config.canary:
        arm = canary_arm(config.canary, ref.name, alias, sticky_key)
        version_id, number = arm.version_id, arm.number
    shadow = config.shadow_version_id
    sampled = (shadow is not None and shadow != version_id and kind in SHADOW_KINDS
               and shadow_sampled(job_id, config.shadow_rate))
    return Route(version_id, number, shadow if sampled else None, config.model_id, alias)


def record_shadow(session: Session, job_id: uuid.UUID, kind: str, chosen: Route) -> None:
    """Remember that the job is shadowed; the worker creates the shadow job once the real
    one has finished, so the shadow can never delay or change the real answer."""
    if chosen.shadow_version_id is None:
        return
    session.execute(insert(ShadowRun), [{
        "job_id": job_id, "model_id": chosen.model_id, "alias": chosen.alias, "kind": kind,
        "shadow_version_id": chosen.shadow_version_id, "status": ShadowStatus.waiting.value,
        "inputs": 0, "agreed": 0, "agreement_sum": 0.0,
    }])
