"""The audit trail (admin): alias moves, key changes, training runs started."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from seqserve.services.api.auth import Admin
from seqserve.services.api.deps import SessionDep
from seqserve.services.api.errors import AUTH_ERRORS
from seqserve.shared.audit import repository as audit_repo
from seqserve.shared.audit.repository import Action
from seqserve.shared.audit.schemas import AuditEventRead, AuditPage

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=AUTH_ERRORS)  # every route here needs a key


@router.get("", response_model=AuditPage)
def list_audit(
    session: SessionDep,
    _: Admin,
    action: Annotated[Action | None, Query()] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=256, description="e.g. `name@production`, a key name, a run id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the previous page")] = None,
) -> AuditPage:
    """Audit events, newest first, filtered; follow `next_cursor` for the next page."""
    filters = audit_repo.AuditFilter(action.value if action else None, actor, target)
    rows = audit_repo.list_page(session, filters, limit + 1, int(cursor) if cursor else None)
    page = list(rows[:limit])
    next_cursor = str(page[-1].id) if len(rows) > limit else None
    return AuditPage(items=[AuditEventRead.model_validate(row) for row in page], next_cursor=next_cursor)
