"""The FastAPI application: `create_app()` is what uvicorn serves."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from services.api import errors
from services.api.console.routes import router as console_router
from services.api.health import scrape
from services.api.health.routes import router as health_router
from services.api.jobs.routes import router as jobs_router
from services.api.jobs.waiter import JobWaiter
from services.api.models.routes import router as models_router
from services.api.stats.routes import router as stats_router
from services.api.training.routes import router as training_router
from shared.config import get_settings
from shared.metrics import HTTP_REQUEST_SECONDS
from shared.queueing import make_celery


async def _time_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = request.scope.get("route")
        # The route template, never the raw path: ids would explode label cardinality.
        template = getattr(route, "path", "unmatched")
        HTTP_REQUEST_SECONDS.labels(template, request.method, str(status)).observe(
            time.perf_counter() - started
        )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await app.state.waiter.start()
    yield
    await app.state.waiter.stop()


def create_app() -> FastAPI:
    app = FastAPI(
        title="seqserve",
        version="0.1.0",
        description="Serving LSTM/GRU sequence models: submit jobs, poll results, browse the registry.",
        lifespan=_lifespan,
    )
    settings = get_settings()
    app.state.celery = make_celery(settings)
    app.state.waiter = JobWaiter(settings)
    errors.install(app)
    scrape.install_collector()
    app.middleware("http")(_time_requests)
    app.include_router(health_router)
    app.include_router(jobs_router)
    app.include_router(models_router)
    app.include_router(training_router)
    app.include_router(stats_router)
    app.include_router(console_router)
    return app
