"""HTTP under both clients: one request description (`Call`), one retry policy, a sync and
an async sender. Everything that is not waiting or I/O is shared, so the two clients
cannot drift apart."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from seqserve_client.errors import ConnectionFailed, error_from_response

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 60.0  # seconds: a server asking for longer gets the error instead


@dataclass(frozen=True)
class Call:
    """One API request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any] = lambda response: response.json()
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    timeout: float | None = None  # this call's read timeout, when longer than the client's

    @property
    def idempotent(self) -> bool:
        """Safe to send again after it may have reached the server: reads, alias moves, and
        creates, which all carry an Idempotency-Key."""
        return self.method in ("GET", "PUT", "DELETE") or "Idempotency-Key" in self.headers


def create_headers(idempotency_key: str | None = None, **extra: str) -> dict[str, str]:
    """Headers of a create: an Idempotency-Key (a fresh one unless given), so that a retry
    of it returns the first attempt's resource instead of making a second."""
    return {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), **extra}


def settings(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    url = (base_url or os.environ.get("SEQSERVE_URL") or DEFAULT_URL).rstrip("/")
    return url, api_key if api_key is not None else os.environ.get("SEQSERVE_API_KEY")


def client_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": "seqserve-client/0.1", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones."""
    return {k: v for k, v in values.items() if v is not None}


class RetryPolicy:
    """429 and 503 are retried after `Retry-After` (else exponential backoff with jitter);
    connection failures too, when the call is idempotent or could not have been sent."""

    def __init__(self, retries: int, backoff: float = 0.5) -> None:
        self.retries, self.backoff = retries, backoff

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and (after := response.headers.get("Retry-After")):
            try:
                return min(float(after), MAX_RETRY_AFTER)
            except ValueError:
                pass  # an HTTP date: fall back to the backoff
        return self.backoff * 2**attempt * (0.5 + random.random() / 2)

    def retry_response(self, attempt: int, response: httpx.Response) -> bool:
        return attempt < self.retries and response.status_code in RETRY_STATUSES

    def retry_error(self, attempt: int, call: Call, exc: httpx.TransportError) -> bool:
        unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        return attempt < self.retries and (unsent or call.idempotent)


def _request_kwargs(call: Call) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"params": call.params, "headers": call.headers}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.files is not None:
        kwargs["files"], kwargs["data"] = call.files, call.data
    if call.timeout is not None:
        kwargs["timeout"] = httpx.Timeout(10.0, read=call.timeout)
    return kwargs


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise error_from_response(response)
    return response


class SyncTransport:
    def __init__(self, http: httpx.Client, policy: RetryPolicy) -> None:
        self.http, self.policy = http, policy

    def send(self, call: Call, stream: bool = False) -> httpx.Response:
        """The response (an open stream when `stream`: the caller closes it), errors raised."""
        attempt = 0
        while True:
            try:
                request = self.http.build_request(call.method, call.path, **_request_kwargs(call))
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if not self.policy.retry_error(attempt, call, exc):
                    raise ConnectionFailed(f"{call.method} {call.path}: {exc}") from exc
                time.sleep(self.policy.delay(attempt, None))
            else:
                if not self.policy.retry_response(attempt, response):
                    if stream and response.is_error:
                        response.read()
                        response.close()
                    return _checked(response)
                response.close()
                time.sleep(self.policy.delay(attempt, response))
            attempt += 1

    def __call__(self, call: Call) -> Any:
        return call.parse(self.send(call))


class AsyncTransport:
    def __init__(self, http: httpx.AsyncClient, policy: RetryPolicy) -> None:
        self.http, self.policy = http, policy

    async def send(self, call: Call, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            try:
                request = self.http.build_request(call.method, call.path, **_request_kwargs(call))
                response = await self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if not self.policy.retry_error(attempt, call, exc):
                    raise ConnectionFailed(f"{call.method} {call.path}: {exc}") from exc
                await asyncio.sleep(self.policy.delay(attempt, None))
            else:
                if not self.policy.retry_response(attempt, response):
                    if stream and response.is_error:
                        await response.aread()
                        await response.aclose()
                    return _checked(response)
                await response.aclose()
                await asyncio.sleep(self.policy.delay(attempt, response))
            attempt += 1

    async def __call__(self, call: Call) -> Any:
        return call.parse(await self.send(call))
