"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from seqserve.services.api.auth import metrics_access
from seqserve.services.api.deps import CeleryDep, SessionDep, SettingsDep
from seqserve.services.api.health import scrape, service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """200 while the process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency or a queue consumer is missing"}})
def readyz(session: SessionDep, celery: CeleryDep, settings: SettingsDep) -> JSONResponse:
    """200 when the database and broker answer and every inference queue is being consumed."""
    checks = {
        "database": service.check_database(session),
        "broker": service.check_broker(settings),
    }
    checks["consumers"] = service.check_consumers(session, celery, settings) if checks["database"]["ok"] else {"ok": False}
    ready = all(check["ok"] for check in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503)


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_access)])
def metrics() -> Response:
    """Prometheus exposition; open unless SEQSERVE_METRICS_AUTH=bearer."""
    return Response(scrape.exposition(), media_type=CONTENT_TYPE_LATEST)
