"""An alias's whole state (version, shadow, canary, policy) as one plain dict: what
rollback restores, and what every change keeps as `previous` first."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from seqserve.shared.db.base import utcnow
from seqserve.shared.registry import repository as registry_repo
from seqserve.shared.rollouts.tables import AliasRollout


def rollout_row(session: Session, model_id: int, alias: str, create: bool = False) -> AliasRollout | None:
    row = session.get(AliasRollout, (model_id, alias))
    if row is None and create:
        # An upsert that does nothing on conflict: concurrent first moves of one alias all succeed.
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(insert(AliasRollout).values(
            model_id=model_id, alias=alias, shadow_rate=0.0, canary={}, policy={}, updated_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=[AliasRollout.model_id, AliasRollout.alias]))
        row = session.get(AliasRollout, (model_id, alias))
    return row


def snapshot(session: Session, model_id: int, alias: str) -> dict[str, Any]:
    current = registry_repo.get_alias(session, model_id, alias)
    row = rollout_row(session, model_id, alias)
    shadow = None
    if row is not None and row.shadow_version_id is not None:
        version = registry_repo.get_version_by_id(session, row.shadow_version_id)
        shadow = {"version": version.version if version else None, "rate": row.shadow_rate}
    return {
        "version": current.version.version if current else None,
        "shadow": shadow,
        "canary": dict(row.canary) if row is not None else {},
        "policy": dict(row.policy) if row is not None else {},
    }


def remember_previous(session: Session, model_id: int, alias: str) -> dict[str, Any]:
    """Keep the state before a change, for rollback; returns it."""
    before = snapshot(session, model_id, alias)
    row = rollout_row(session, model_id, alias, create=True)
    assert row is not None
    row.previous = before
    session.flush()
    return before


def versions_to_warm(session: Session) -> list[tuple[int, str]]:
    """(version id, task) that workers should hold warm, pending promotions first: what an
    alias is moving to, then what rollout aliases serve (their version, shadow, canary arms)."""
    from sqlalchemy import select

    from seqserve.shared.db.models import Model, ModelAlias, ModelVersion

    rows = session.execute(
        select(AliasRollout, ModelAlias.version_id, Model.task)
        .join(ModelAlias, (ModelAlias.model_id == AliasRollout.model_id) & (ModelAlias.alias == AliasRollout.alias))
        .join(Model, Model.id == AliasRollout.model_id)
    ).all()
    pending = [(row.pending_version_id, task) for row, _, task in rows if row.pending_version_id is not None]
    serving = []
    for row, version_id, task in rows:
        serving.append((version_id, task))
        if row.shadow_version_id is not None:
            serving.append((row.shadow_version_id, task))
        if row.canary:
            numbers = [int(number) for number in row.canary]
            serving += [(vid, task) for vid in session.scalars(select(ModelVersion.id).where(
                ModelVersion.model_id == row.model_id, ModelVersion.version.in_(numbers)))]
    return list(dict.fromkeys(pending + serving))
