"""One error shape for every 4xx/5xx: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


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
    return JSONResponse(error_body(exc.code, exc.message, exc.field), exc.status, headers=exc.headers)


async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    details = _validation_errors(list(exc.errors()))
    first = details[0] if details else {"field": None, "message": "invalid request"}
    message = f"{first['field'] or 'body'}: {first['message']}"
    return JSONResponse(error_body("invalid_request", message, first["field"], details=details), 422)


async def _on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
