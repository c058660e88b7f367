"""Rollout logic: configure an alias's shadow / canary / policy, read its live state,
promote on evidence (two-phase: pending until the workers are warm), roll back."""

from __future__ import annotations

from typing import Any

from redis import Redis
from sqlalchemy.orm import Session

from seqserve.shared.audit import repository as audit
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Model, ModelVersion
from seqserve.shared.registry import repository as registry_repo
from seqserve.shared.rollouts import evidence, warm
from seqserve.shared.rollouts.schemas import (
    AliasStateRead,
    CanaryArmRead,
    PromotionPolicy,
    RolloutUpdate,
    ShadowRead,
)
from seqserve.shared.rollouts.state import remember_previous, rollout_row, snapshot
from seqserve.shared.rollouts.tables import AliasRollout


class RolloutError(Exception):
    """A request the rollout routes answer with a 4xx: status, code, message, field."""

    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _model(session: Session, name: str) -> Model:
    model = registry_repo.get_model(session, name)
    if model is None:
        raise RolloutError(404, "model_not_found", f"model '{name}' is not registered", "name")
    return model


def _alias_version(session: Session, model: Model, alias: str) -> ModelVersion:
    row = registry_repo.get_alias(session, model.id, alias)
    if row is None:
        raise RolloutError(404, "alias_not_found", f"model '{model.name}' has no alias '{alias}'", "alias")
    return row.version


def _version(session: Session, model: Model, number: int, field: str) -> ModelVersion:
    version = registry_repo.get_version(session, model.id, number)
    if version is None:
        raise RolloutError(422, "version_not_found", f"model '{model.name}' has no version {number}", field)
    return version


def _target(model: Model, alias: str) -> str:
    return f"{model.name}@{alias}"


def configure(session: Session, name: str, alias: str, update: RolloutUpdate, actor: str) -> None:
    """Replace the alias's shadow, canary split and policy (audited, rollback-able)."""
    model = _model(session, name)
    current = _alias_version(session, model, alias)
    shadow = _version(session, model, update.shadow.version, "shadow.version") if update.shadow else None
    if shadow is not None and shadow.id == current.id:
        raise RolloutError(422, "shadow_is_current", f"version {shadow.version} already serves '{alias}'",
                           "shadow.version")
    for number in update.canary:
        _version(session, model, int(number), f"canary.{number}")
    if update.canary and not any(update.canary.values()):
        raise RolloutError(422, "canary_without_weight", "at least one canary weight must be above 0", "canary")
    before = remember_previous(session, model.id, alias)
    row = rollout_row(session, model.id, alias)
    assert row is not None
    _apply(row, shadow.id if shadow else None, update.shadow.rate if update.shadow else 0.0,
           dict(update.canary), update.policy.model_dump())
    session.flush()
    audit.record(session, actor, audit.Action.alias_rollout, _target(model, alias),
                 {"from": before, "to": snapshot(session, model.id, alias), "reason": update.reason})


def _apply(row: AliasRollout, shadow_version_id: int | None, rate: float, canary: dict[str, Any],
           policy: dict[str, Any]) -> None:
    now = utcnow()
    if shadow_version_id != row.shadow_version_id:
        row.shadow_since = now if shadow_version_id is not None else None
    if canary != row.canary:
        row.canary_since = now if canary else None
    row.shadow_version_id, row.shadow_rate, row.canary, row.policy = shadow_version_id, rate, canary, policy


def read_state(session: Session, redis: Redis | None, name: str, alias: str) -> AliasStateRead:
    """The alias's version, pending promotion, shadow agreement, canary arms with their
    outcomes, policy, previous state and which processes hold which version warm."""
    model = _model(session, name)
    current = _alias_version(session, model, alias)
    row = rollout_row(session, model.id, alias)
    shadow = None
    if row is not None and row.shadow_version_id is not None:
        found = evidence.shadow(session, model.id, alias, row.shadow_version_id)
        number = registry_repo.get_version_by_id(session, row.shadow_version_id)
        shadow = ShadowRead(version=number.version if number else 0, rate=row.shadow_rate, since=row.shadow_since,
                            jobs=found.jobs, failed=found.failed, inputs=found.inputs, agreed=found.agreed,
                            agreement=found.agreement)
    arms = _canary_arms(session, model, row)
    pending = registry_repo.get_version_by_id(session, row.pending_version_id) if row and row.pending_version_id \
        else None
    numbers = {current.id: current.version, **{v.id: v.version for v in model.versions}}
    held = {} if redis is None else {str(numbers[v]): warm.warm_on(redis, v) for v in numbers}
    return AliasStateRead(
        model=name, alias=alias, version=current.version, pending_version=pending.version if pending else None,
        shadow=shadow, canary=arms, canary_since=row.canary_since if row else None,
        policy=PromotionPolicy.model_validate(row.policy if row else {}), previous=row.previous if row else None,
        warm={number: names for number, names in held.items() if names})


def _canary_arms(session: Session, model: Model, row: AliasRollout | None) -> list[CanaryArmRead]:
    if row is None or not row.canary:
        return []
    versions = {int(n): registry_repo.get_version(session, model.id, int(n)) for n in row.canary}
    found = evidence.versions(session, [v.id for v in versions.values() if v], row.canary_since)
    arms = []
    for number, weight in sorted(row.canary.items(), key=lambda item: int(item[0])):
        version = versions[int(number)]
        seen = found.get(version.id) if version else None
        arms.append(CanaryArmRead(version=int(number), weight=int(weight), finished=seen.finished if seen else 0,
                                  failed=seen.failed if seen else 0, failure_ratio=seen.failure_ratio if seen else None,
                                  mean_seconds=seen.mean_seconds if seen else None))
    return arms
