"""The FastAPI application: `create_app()` is what uvicorn serves."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seqserve.services.api import errors
from seqserve.services.api.audit.routes import router as audit_router
from seqserve.services.api.auth import warn_if_off
from seqserve.services.api.batches.routes import router as batches_router
from seqserve.services.api.caches import ApiCaches
from seqserve.services.api.console.routes import router as console_router
from seqserve.services.api.docs_pages import DocsPagesPolicy
from seqserve.services.api.drift.routes import router as drift_router
from seqserve.services.api.events.routes import router as events_router
from seqserve.services.api.events.service import JobEventReader
from seqserve.services.api.feedback.routes import router as feedback_router
from seqserve.services.api.files.routes import router as files_router
from seqserve.services.api.health import scrape
from seqserve.services.api.health.routes import router as health_router
from seqserve.services.api.jobs.group_commit import SubmitGroups
from seqserve.services.api.jobs.routes import router as jobs_router
from seqserve.services.api.jobs.service import JobQueue
from seqserve.services.api.jobs.waiter import JobWaiter
from seqserve.services.api.keys.routes import router as keys_router
from seqserve.services.api.limits import RateLimiter
from seqserve.services.api.models.artifacts import router as artifacts_router
from seqserve.services.api.models.routes import router as models_router
from seqserve.services.api.rollouts.routes import router as rollouts_router
from seqserve.services.api.stats.routes import router as stats_router
from seqserve.services.api.training.routes import router as training_router
from seqserve.shared import heap
from seqserve.shared.config import get_settings
from seqserve.shared.metrics import HTTP_REQUEST_SECONDS
from seqserve.shared.queueing import broker_redis, make_celery


class RequestTimer:
    """HTTP latency by route template, method and status: plain ASGI middleware (Starlette's
    BaseHTTPMiddleware costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # The route template, never the raw path: ids would explode label cardinality.
            template = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUEST_SECONDS.labels(template, scope["method"], str(status)).observe(time.perf_counter() - started)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await app.state.waiter.start()
    heap.freeze_startup_objects()  # the app is built: later GC passes skip it
    yield
    await app.state.waiter.stop()
    await app.state.limiter.close()
    await app.state.job_events.aclose()
    app.state.submit_groups.close()


def create_app() -> FastAPI:
    settings = get_settings()
    docs = settings.docs  # SEQSERVE_DOCS=false serves neither the document nor its pages
    # fastapi-offline serves Swagger UI's and ReDoc's files from its package: /docs works offline.
    app = (FastAPIOffline if docs else FastAPI)(
        title="seqserve",
        version="0.1.0",
        description="Serving LSTM/GRU sequence models: submit jobs, poll results, browse the registry.",
        lifespan=_lifespan,
        # Any route may meet a bad body, bad input or an unreachable database; routes add their own.
        responses=errors.responses(400, 422, 500, 503),
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    warn_if_off(settings)
    app.state.celery = make_celery(settings)
    app.state.job_queue = JobQueue(app.state.celery, broker_redis(settings))
    app.state.submit_groups = SubmitGroups(app.state.job_queue)
    app.state.caches = ApiCaches()
    app.state.waiter = JobWaiter(settings)
    app.state.limiter = RateLimiter(settings)
    app.state.job_events = JobEventReader(settings)
    errors.install(app)
    scrape.install_collector()
    app.add_middleware(RequestTimer)
    app.add_middleware(DocsPagesPolicy)
    app.include_router(health_router)
    app.include_router(jobs_router)
    app.include_router(feedback_router)
    app.include_router(events_router)
    app.include_router(models_router)
    app.include_router(drift_router)
    app.include_router(artifacts_router)
    app.include_router(rollouts_router)
    app.include_router(training_router)
    app.include_router(stats_router)
    app.include_router(keys_router)
    app.include_router(audit_router)
    app.include_router(console_router)
    app.include_router(files_router)
    app.include_router(batches_router)
    return app
