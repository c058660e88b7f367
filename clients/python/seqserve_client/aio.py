"""The asyncio client: `Client`'s methods, awaited. Requests are built by the same
`seqserve_client._calls`; only the waiting and the I/O differ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import EventSource

from seqserve_client import _calls as calls
from seqserve_client._transport import AsyncTransport, Call, RetryPolicy, client_headers, settings
from seqserve_client._waiting import BatchLooks, Deadline, StreamCursor, finished
from seqserve_client.errors import WaitTimeout
from seqserve_client.types import Alias, AliasState, Batch, Event, File, Job, Model, Page, Promotion, TrainingRun

ProgressCallback = Callable[[Batch], Awaitable[None] | None]


class AsyncClient:
    """`async with AsyncClient(base_url, api_key=...) as client: job = await client.run(...)`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 3, http: httpx.AsyncClient | None = None) -> None:
        self.base_url, api_key = settings(base_url, api_key)
        self.http = http or httpx.AsyncClient(base_url=self.base_url, headers=client_headers(api_key),
                                              timeout=timeout)
        self.retries = retries
        self._send = AsyncTransport(self.http, RetryPolicy(retries))
        self.jobs = AsyncJobs(self)
        self.models = AsyncModels(self)
        self.training = AsyncTraining(self)
        self.batches = AsyncBatches(self)

    async def call(self, call: Call) -> Any:
        return await self._send(call)

    async def run(self, kind: str, model: str, inputs: list[str] | str, params: dict[str, Any] | None = None,
                  timeout: float | None = 300.0, priority: str | None = None, raise_on_failure: bool = True) -> Job:
        """As `Client.run`."""
        deadline = Deadline(timeout)
        job = await self.jobs.create(kind, model, inputs, params, priority=priority, wait=deadline.hold())
        return finished(await self.jobs.wait(job.id, deadline.left(), job=job), raise_on_failure)

    def stream(self, kind: str, model: str, inputs: list[str] | str, params: dict[str, Any] | None = None,
               priority: str | None = None) -> AsyncIterator[Event]:
        """As `Client.stream`: `async for event in client.stream(...)`."""
        body = calls.job_body(kind, model, inputs, params, priority, None)
        return self.jobs._events(calls.stream_job(body), StreamCursor())

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class AsyncJobs:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, kind: str, model: str, inputs: list[str] | str, params: dict[str, Any] | None = None,
                     priority: str | None = None, webhook_url: str | None = None, wait: float | None = None,
                     idempotency_key: str | None = None) -> Job:
        body = calls.job_body(kind, model, inputs, params, priority, webhook_url)
        return await self._client.call(calls.create_job(body, wait, idempotency_key))

    async def get(self, job_id: str, wait: float | None = None) -> Job:
        return await self._client.call(calls.get_job(job_id, wait))

    async def list(self, status: str | None = None, kind: str | None = None, model: str | None = None,
                   limit: int | None = None, cursor: str | None = None) -> Page:
        return await self._client.call(calls.list_jobs(status, kind, model, limit, cursor))

    async def cancel(self, job_id: str) -> Job:
        return await self._client.call(calls.cancel_job(job_id))

    async def wait(self, job_id: str, timeout: float | None = 300.0, job: Job | None = None) -> Job:
        deadline = Deadline(timeout)
        while job is None or not job.done:
            if job is not None and deadline.passed:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout}s", job=job)
            started = time.monotonic()
            job = await self.get(job_id, wait=deadline.hold())
            await asyncio.sleep(deadline.next_poll(time.monotonic() - started > 0.5 * deadline.hold()))
        return job

    def stream(self, job_id: str, last_event_id: str | None = None) -> AsyncIterator[Event]:
        return self._events(calls.job_events(job_id, last_event_id), StreamCursor(job_id, last_event_id))

    async def _events(self, call: Call, cursor: StreamCursor) -> AsyncIterator[Event]:
        attempts = 0
        while not cursor.ended:
            error: httpx.TransportError | None = None
            try:
                response = await self._client._send.send(call, stream=True)
                try:
                    async for sse in EventSource(response).aiter_sse():
                        yield cursor.see(sse)
                        if cursor.ended:
                            return
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                error = exc
            attempts += 1
            if not cursor.can_resume(error, attempts, self._client.retries):
                if error is not None:
                    raise error
                return  # closed before the end, and not resumable
            assert cursor.job_id is not None
            call = calls.job_events(cursor.job_id, cursor.last_event_id)


class AsyncModels:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> list[Model]:
        return await self._client.call(calls.list_models())

    async def get(self, name: str) -> Model:
        return await self._client.call(calls.get_model(name))

    async def promote(self, name: str, version: int, alias: str = "production", reason: str = "") -> Alias:
        return await self._client.call(calls.move_alias(name, version, alias, reason))

    async def rollback(self, name: str, version: int | None = None, alias: str = "production",
                       reason: str = "rollback") -> Alias:
        if version is not None:
            return await self.promote(name, version, alias, reason)
        return await self._client.call(calls.roll_back(name, alias, reason))

    async def rollout(self, name: str, alias: str = "production") -> AliasState:
        return await self._client.call(calls.alias_state(name, alias))

    async def set_rollout(self, name: str, alias: str = "production", *, shadow_version: int | None = None,
                          shadow_rate: float = 1.0, canary: dict[int, int] | None = None,
                          policy: dict[str, Any] | None = None, reason: str = "") -> AliasState:
        body = calls.rollout_body(shadow_version, shadow_rate, canary, policy, reason)
        return await self._client.call(calls.set_rollout(name, alias, body))

    async def promote_on_evidence(self, name: str, version: int | None = None, alias: str = "production",
                                  force: bool = False, reason: str = "") -> Promotion:
        return await self._client.call(calls.promote_on_evidence(name, alias, version, force, reason))


class AsyncTraining:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def start(self, task: str, preset: str | None = None, model_name: str | None = None,
                    overrides: dict[str, Any] | None = None) -> TrainingRun:
        return await self._client.call(calls.start_training(task, preset, model_name, overrides))

    async def get(self, run_id: str) -> TrainingRun:
        return await self._client.call(calls.get_training(run_id))

    async def list(self, status: str | None = None, limit: int | None = None) -> list[TrainingRun]:
        return await self._client.call(calls.list_training(status, limit))

    async def cancel(self, run_id: str) -> TrainingRun:
        return await self._client.call(calls.cancel_training(run_id))


class AsyncBatches:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def upload(self, path: str | Path, format: str | None = None) -> File:
        return await self._client.call(calls.upload_file(path, format))

    async def create(self, kind: str, model: str, input_file: str, params: dict[str, Any] | None = None,
                     priority: str | None = None, completion_window: str | None = None,
                     webhook_url: str | None = None, on_malformed: str | None = None,
                     idempotency_key: str | None = None) -> Batch:
        body = calls.batch_body(kind, model, input_file, params, priority, completion_window, webhook_url,
                                on_malformed)
        return await self._client.call(calls.create_batch(body, idempotency_key))

    async def get(self, batch_id: str, wait: float | None = None) -> Batch:
        return await self._client.call(calls.get_batch(batch_id, wait))

    async def list(self, status: str | None = None, kind: str | None = None, model: str | None = None,
                   limit: int | None = None, cursor: str | None = None) -> Page:
        return await self._client.call(calls.list_batches(status, kind, model, limit, cursor))

    async def cancel(self, batch_id: str) -> Batch:
        return await self._client.call(calls.cancel_batch(batch_id))

    async def wait(self, batch_id: str, timeout: float | None = None, progress: ProgressCallback | None = None,
                   interval: float = 2.0) -> Batch:
        deadline, look = Deadline(timeout), BatchLooks(interval)
        while True:
            started = time.monotonic()
            batch = await self.get(batch_id, wait=look.hold)
            look.looked(time.monotonic() - started)
            if progress is not None and (pending := progress(batch)) is not None:
                await pending
            if batch.done:
                return batch
            if deadline.passed:
                raise WaitTimeout(f"batch {batch_id} still {batch.status} after {timeout}s", batch=batch)
            await asyncio.sleep(look.next(deadline))

    async def download(self, batch_id: str, path: str | Path | None = None, format: str | None = None,
                       errors: bool = False) -> bytes:
        call = calls.batch_errors(batch_id) if errors else calls.batch_output(batch_id, format)
        content: bytes = await self._client.call(call)
        if path is not None:
            Path(path).write_bytes(content)
        return content

    async def file(self, file_id: str) -> File:
        return await self._client.call(calls.get_file(file_id))

    async def file_content(self, file_id: str) -> bytes:
        return await self._client.call(calls.file_content(file_id))
