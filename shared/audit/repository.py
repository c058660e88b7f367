"""All audit queries. Rows are only ever added, in the transaction of the change they record."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from seqserve.shared.db.models import AuditEvent


class Action(str, enum.Enum):
    alias_moved = "alias.moved"
    alias_rollout = "alias.rollout"  # shadow / canary / policy changed
    alias_pending = "alias.pending"  # a promotion waits for warm workers
    alias_refused = "alias.refused"  # a promotion the policy refused
    alias_rolled_back = "alias.rolled_back"
    alias_abandoned = "alias.abandoned"  # a pending promotion whose API process died before moving it
    key_created = "key.created"
    key_revoked = "key.revoked"
    key_limits = "key.limits"  # a key's rate limit, input quota or max priority changed
    training_started = "training.started"
    training_finished = "training.finished"  # registered, with the gate's decision
    training_skipped = "training.skipped"  # a scheduled run with no new data
    training_cancelled = "training.cancelled"


def record(session: Session, actor: str, action: Action, target: str, detail: dict[str, Any]) -> None:
    session.add(AuditEvent(actor=actor, action=action.value, target=target, detail=detail))
    session.flush()


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None
    target: str | None = None


def list_page(session: Session, filters: AuditFilter, limit: int, before_id: int | None) -> Sequence[AuditEvent]:
    """Newest first; `before_id`: the last id of the previous page."""
    query = select(AuditEvent)
    for column, value in ((AuditEvent.action, filters.action), (AuditEvent.actor, filters.actor),
                          (AuditEvent.target, filters.target)):
        if value is not None:
            query = query.where(column == value)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)).all()
