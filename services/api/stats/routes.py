"""Operational statistics: what the ops console polls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from seqserve.services.api.auth import Admin
from seqserve.services.api.deps import SessionDep, SettingsDep
from seqserve.services.api.errors import AUTH_ERRORS
from seqserve.services.api.stats import service
from seqserve.shared.jobs.stats_schemas import StatsRead

router = APIRouter(prefix="/v1/stats", tags=["stats"], responses=AUTH_ERRORS)  # every route here needs a key

WINDOW_DOC = "Latency percentiles, finished counts and throughput cover jobs that ended this many seconds back."


@router.get("", response_model=StatsRead)
def read_stats(
    session: SessionDep,
    settings: SettingsDep,
    _: Admin,
    window_seconds: Annotated[int, Query(ge=1, le=7 * 24 * 3600, description=WINDOW_DOC)] = 300,
) -> StatsRead:
    """Every team's jobs (so admin only) by status, per-kind p50/p95/p99 latency and throughput, recent failures, queue depths."""
    return service.job_stats(session, settings, window_seconds)
