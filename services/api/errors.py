"""One error shape for every 4xx/5xx: {"error": {"code", "message", "field"}}.

Every exception ends here as JSON: the known ones by their handlers, anything else by
`CatchAll`, a plain ASGI layer inside Starlette's ServerErrorMiddleware. That middleware
re-raises after answering, and uvicorn then closes the keep-alive connection, so a pooled
client's next request would meet ECONNRESET; `CatchAll` answers and does not re-raise.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seqserve.shared.validation import printable_text

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # validation errors add `details`

    code: str
    message: str
    field: str | None


class ErrorBody(BaseModel):
    """What every 4xx/5xx answers."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Malformed request", 401: "No valid API key (missing, unknown, expired or revoked)",
    403: "The key lacks the scope this route needs (`insufficient_scope`)", 404: "Not found",
    409: "Conflict with the current state",
    422: "Invalid input; `field` names it", 500: "Internal error",
    503: "A dependency (database, broker) is unavailable, or the queue is full; see Retry-After",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status answering the error shape."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS.get(status, "Error")} for status in statuses}


# What a route behind an API key may also answer (services/api/auth.py).
AUTH_ERRORS = responses(401, 403)


def _printable(value: Any) -> Any:
    if isinstance(value, str):
        return printable_text(value)
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    return value


class ErrorResponse(JSONResponse):
    """JSON that survives echoing input back: a lone surrogate becomes a visible escape
    instead of a UnicodeEncodeError inside the error handler."""

    def render(self, content: Any) -> bytes:
        return json.dumps(_printable(content), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'inputs', 2) -> 'inputs[2]'."""
    path = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"field": field_path(e["loc"]), "message": e["msg"], "type": e["type"]} for e in errors]


async def _on_api_error(_: Request, exc: ApiError) -> JSONResponse:
    return ErrorResponse(error_body(exc.code, exc.message, exc.field), exc.status, headers=exc.headers)


async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    details = _validation_errors(list(exc.errors()))
    first = details[0] if details else {"field": None, "message": "invalid request"}
    message = f"{first['field'] or 'body'}: {first['message']}"
    return ErrorResponse(error_body("invalid_request", message, first["field"], details=details), 422)


async def _on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return ErrorResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)


def _unavailable(code: str, message: str) -> JSONResponse:
    return ErrorResponse(error_body(code, message), 503, headers={"Retry-After": RETRY_AFTER_SECONDS})


# Errors that mean "the database can not be reached now", not "this request is wrong":
# a refused or dropped connection, a pool with no connection to lend within its timeout.
DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.DisconnectionError)


async def _on_database_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DATABASE_UNAVAILABLE) or getattr(exc, "connection_invalidated", False):
        log.warning("database unavailable: %s", exc)
        return _unavailable("database_unavailable", "the database is unreachable; retry later")
    return _internal_error(exc)


async def _on_broker_error(_: Request, exc: Exception) -> JSONResponse:
    log.warning("broker unavailable: %s", exc)
    return _unavailable("broker_unavailable", "the job queue is unreachable; retry later")


def _internal_error(exc: BaseException) -> JSONResponse:
    log.error("unhandled exception", exc_info=exc)
    return ErrorResponse(error_body("internal_error", "internal error; it was logged"), 500)


class CatchAll:
    """Answer any exception no handler took with a JSON 500, keeping the connection open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # half a response went out: only closing the connection can end it
                raise
            await _internal_error(exc)(scope, receive, send)


def install(app: FastAPI) -> None:
    """The handlers, and `CatchAll` as the innermost middleware (install before the others)."""
    app.add_exception_handler(ApiError, _on_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.SQLAlchemyError, _on_database_error)
    app.add_exception_handler(redis.exceptions.ConnectionError, _on_broker_error)
    app.add_exception_handler(redis.exceptions.TimeoutError, _on_broker_error)
    app.add_middleware(CatchAll)
