"""Exceptions carrying the server's error (`{"error": {"code", "message", "field"}}`) and HTTP status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from seqserve_client.types import Batch, Job


class SeqserveError(Exception):
    """Base of every error this client raises."""


class ApiError(SeqserveError):
    """The server answered with an error status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: httpx.Headers | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or httpx.Headers()


class BadRequest(ApiError):
    """400 or 422: an input the server refused; `field` names it."""


class Unauthorized(ApiError):
    """401: no key, or a key the server does not know."""


class Forbidden(ApiError):
    """403: the key lacks the scope."""


class NotFound(ApiError):
    """404 (another team's job is not found either)."""


class Conflict(ApiError):
    """409: e.g. cancelling an ended job, an Idempotency-Key reused with another body."""


class RateLimited(ApiError):
    """429, after the client's retries ran out."""


class Unavailable(ApiError):
    """503 (queue full, broker down), after the client's retries ran out."""


class ServerError(ApiError):
    """Another 5xx."""


class ConnectionFailed(SeqserveError):
    """The server could not be reached (after the retries)."""


class WaitTimeout(SeqserveError):
    """The job or batch did not end within the timeout; `.job` / `.batch` is its last state."""

    def __init__(self, message: str, job: Job | None = None, batch: Batch | None = None) -> None:
        super().__init__(message)
        self.job, self.batch = job, batch


class JobFailed(SeqserveError):
    """`run()` ended with a failed or cancelled job; `.job` holds it."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} {job.status}: {job.error or ''}".rstrip(": "))
        self.job = job


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 422: BadRequest,
    429: RateLimited, 503: Unavailable,
}


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed exception for an error response (any body: a proxy's text/plain too)."""
    code, message, field = f"http_{response.status_code}", response.reason_phrase, None
    try:
        body: Any = response.json()
        error = body["error"]
        code, message, field = error["code"], error["message"], error.get("field")
    except (ValueError, KeyError, TypeError):
        if response.text:
            message = response.text[:500]
    cls = _BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else ApiError)
    return cls(response.status_code, code, message, field, response.headers)
