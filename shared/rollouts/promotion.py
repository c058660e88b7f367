"""Promotion on live evidence, two-phase: the policy decides (refusals audited too), the
alias is `pending` until the workers hold the candidate warm (or the warm-up timeout
passes: it then moves anyway, and the audit says how many were warm), then it moves and the
rollout ends. Rollback restores the whole previous state in one call. A promotion whose API
process died while it waited stays pending only until the job sweep abandons it."""

from __future__ import annotations

from datetime import datetime, timedelta

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from seqserve.shared.audit import repository as audit
from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Model, ModelVersion
from seqserve.shared.db.session import session_scope
from seqserve.shared.registry import repository as registry_repo
from seqserve.shared.rollouts import evidence, warm
from seqserve.shared.rollouts.policy import evaluate
from seqserve.shared.rollouts.schemas import CheckRead, PromoteRequest, PromotionPolicy, PromotionRead
from seqserve.shared.rollouts.service import (
    RolloutError,
    _alias_version,
    _apply,
    _model,
    _target,
    _version,
    read_state,
)
from seqserve.shared.rollouts.state import remember_previous, rollout_row, snapshot
from seqserve.shared.rollouts.tables import AliasRollout


def _candidate(session: Session, model: Model, current: ModelVersion, row: AliasRollout | None,
               asked: int | None) -> ModelVersion:
    if asked is not None:
        return _version(session, model, asked, "version")
    if row is not None and row.shadow_version_id is not None:
        shadow = registry_repo.get_version_by_id(session, row.shadow_version_id)
        if shadow is not None:
            return shadow
    arms = sorted(((int(w), int(n)) for n, w in (row.canary if row else {}).items() if int(n) != current.version),
                  reverse=True)
    if not arms:
        raise RolloutError(422, "no_candidate", "name a version: the alias has no shadow and no canary", "version")
    return _version(session, model, arms[0][1], "version")


def _checks(session: Session, model: Model, alias: str, current: ModelVersion, candidate: ModelVersion,
            row: AliasRollout | None) -> list[CheckRead]:
    policy = PromotionPolicy.model_validate(row.policy if row else {})
    found = evidence.versions(session, [current.id, candidate.id], row.canary_since if row else None)
    return evaluate(policy, evidence.shadow(session, model.id, alias, candidate.id), found.get(candidate.id),
                    found.get(current.id))


def _decide(name: str, alias: str, request: PromoteRequest, actor: str) -> tuple[int, int, list[CheckRead]]:
    """(candidate version id, its number, the checks); a refusal is audited and raised."""
    with session_scope() as session:
        model = _model(session, name)
        current = _alias_version(session, model, alias)
        row = rollout_row(session, model.id, alias)
        candidate = _candidate(session, model, current, row, request.version)
        if candidate.id == current.id:
            raise RolloutError(422, "already_serving", f"version {candidate.version} already serves '{alias}'",
                               "version")
        checks = _checks(session, model, alias, current, candidate, row)
        failed = [check for check in checks if not check.passed]
        if failed and not request.force:
            audit.record(session, actor, audit.Action.alias_refused, _target(model, alias), {
                "from": current.version, "to": candidate.version, "reason": request.reason,
                "checks": [c.model_dump() for c in checks]})
        else:
            row = rollout_row(session, model.id, alias, create=True)
            assert row is not None
            row.pending_version_id, row.pending_since = candidate.id, utcnow()
            audit.record(session, actor, audit.Action.alias_pending, _target(model, alias),
                         {"from": current.version, "to": candidate.version})
        decided = (candidate.id, candidate.version, checks)
    if failed and not request.force:
        message = "promotion refused: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise RolloutError(409, "promotion_refused", message, "version")
    return decided


def promote(name: str, alias: str, request: PromoteRequest, actor: str, redis: Redis | None, settings: Settings
            ) -> PromotionRead:
    """Check the policy, wait for warm workers, move the alias; each phase commits."""
    candidate_id, number, checks = _decide(name, alias, request, actor)
    warm_count, expected, timed_out = 0, 0, False
    if redis is not None:
        warm_count, expected = warm.wait_until_warm(redis, candidate_id, settings.rollout_warmup_timeout_seconds,
                                                    settings.consumer_window_seconds)
        timed_out = warm_count < expected
    forced = request.force and not all(check.passed for check in checks)
    reason = ("forced: " if forced else "policy passed: ") + (request.reason or f"promoted to v{number}")
    if timed_out:
        reason += f" (warm-up timed out: {warm_count} of {expected} workers warm)"
    with session_scope() as session:
        model = _model(session, name)
        before = remember_previous(session, model.id, alias)
        registry_repo.set_alias(session, model.id, alias, candidate_id)
        row = rollout_row(session, model.id, alias)
        assert row is not None
        _apply(row, None, 0.0, {}, dict(row.policy))  # the rollout is over: all traffic on the candidate
        row.pending_version_id, row.pending_since = None, None
        audit.record(session, actor, audit.Action.alias_moved, _target(model, alias), {
            "from": before["version"], "to": number, "reason": reason, "checks": [c.model_dump() for c in checks],
            "warm": {"processes": warm_count, "expected": expected}})
    with session_scope() as session:
        state = read_state(session, redis, name, alias)
    return PromotionRead(promoted=True, reason=reason, checks=checks, warm_processes=warm_count,
                         expected_workers=expected, warm_timed_out=timed_out, state=state)


def rollback(session: Session, name: str, alias: str, actor: str, reason: str) -> None:
    """Restore the alias's state before its last change (version, shadow, canary, policy)."""
    model = _model(session, name)
    _alias_version(session, model, alias)
    row = rollout_row(session, model.id, alias)
    previous = row.previous if row is not None else None
    if row is None or not previous or previous.get("version") is None:
        raise RolloutError(409, "nothing_to_roll_back", f"'{name}@{alias}' has no earlier state", "alias")
    version = _version(session, model, int(previous["version"]), "version")
    shadow = previous.get("shadow") or {}
    shadow_version = registry_repo.get_version(session, model.id, int(shadow["version"])) if shadow else None
    before = snapshot(session, model.id, alias)
    registry_repo.set_alias(session, model.id, alias, version.id)
    row = rollout_row(session, model.id, alias)
    assert row is not None
    _apply(row, shadow_version.id if shadow_version else None, float(shadow["rate"]) if shadow_version else 0.0,
           dict(previous.get("canary") or {}), dict(previous.get("policy") or {}))
    row.previous, row.pending_version_id, row.pending_since = before, None, None
    session.flush()
    audit.record(session, actor, audit.Action.alias_rolled_back, _target(model, alias),
                 {"from": before, "to": previous, "reason": reason})


# How long past the warm-up timeout a promotion may stay pending before the sweep decides
# that no API process is waiting for it any more.
ABANDON_MARGIN = timedelta(seconds=60)


def abandon_stale(session: Session, now: datetime, warmup_timeout_seconds: float) -> list[str]:
    """Clear pending promotions older than the warm-up timeout plus a margin: the API process
    that waited for them died before it moved the alias (the alias keeps its version and the
    rollout its shadow and canary; promote again to move it). Audited; returns the targets."""
    due = now - timedelta(seconds=warmup_timeout_seconds) - ABANDON_MARGIN
    rows = session.scalars(select(AliasRollout).where(AliasRollout.pending_version_id.is_not(None),
                                                      AliasRollout.pending_since < due).with_for_update(skip_locked=True))
    abandoned = []
    for row in rows:
        assert row.pending_version_id is not None and row.pending_since is not None  # the query's filter
        model = session.get(Model, row.model_id)  # the row's foreign keys: both exist (cascade, set null)
        pending = registry_repo.get_version_by_id(session, row.pending_version_id)
        assert model is not None and pending is not None
        target = _target(model, row.alias)
        audit.record(session, "sweep", audit.Action.alias_abandoned, target, {
            "pending": pending.version, "pending_since": row.pending_since.isoformat(),
            "reason": "no API process finished the promotion within the warm-up timeout"})
        row.pending_version_id, row.pending_since = None, None
        abandoned.append(target)
    session.flush()
    return abandoned
