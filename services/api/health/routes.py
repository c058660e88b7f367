"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from seqserve.services.api.auth import Admin, metrics_access
from seqserve.services.api.deps import SessionDep, SettingsDep
from seqserve.services.api.errors import AUTH_ERRORS
from seqserve.services.api.health import scrape, service
from seqserve.services.api.health.schemas import QueuesRead

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """200 while the process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database or the broker does not answer"}})
def readyz(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """200 when this process can accept and store jobs: the database and the broker answer."""
    checks = {
        "database": service.check_database(session),
        "broker": service.check_broker(settings),
    }
    ready = all(check["ok"] for check in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503)


@router.get("/v1/queues", response_model=QueuesRead, responses=AUTH_ERRORS)
def queues(session: SessionDep, settings: SettingsDep, _: Admin) -> dict[str, Any]:
    """Who consumes each inference queue: live workers, messages waiting, the last canary."""
    return service.queue_report(session, settings)


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_access)])
def metrics() -> Response:
    """Prometheus exposition; open unless SEQSERVE_METRICS_AUTH=bearer."""
    return Response(scrape.exposition(), media_type=CONTENT_TYPE_LATEST)
