"""The synchronous client. `AsyncClient` (seqserve_client.aio) mirrors it method for method."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import EventSource

from seqserve_client import _calls as calls
from seqserve_client._transport import Call, RetryPolicy, SyncTransport, client_headers, settings
from seqserve_client._waiting import BatchLooks, Deadline, StreamCursor, finished
from seqserve_client.errors import WaitTimeout
from seqserve_client.types import Alias, AliasState, Batch, Event, File, Job, Model, Page, Promotion, TrainingRun

ProgressCallback = Callable[[Batch], None]


class Client:
    """`Client(base_url, api_key=..., timeout=..., retries=...)`; the URL and key default to
    `SEQSERVE_URL` / `SEQSERVE_API_KEY`. Use it as a context manager, or call `close()`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 3, http: httpx.Client | None = None) -> None:
        self.base_url, api_key = settings(base_url, api_key)
        self.http = http or httpx.Client(base_url=self.base_url, headers=client_headers(api_key), timeout=timeout)
        self.retries = retries
        self._send = SyncTransport(self.http, RetryPolicy(retries))
        self.jobs = Jobs(self)
        self.models = Models(self)
        self.training = Training(self)
        self.batches = Batches(self)

    def call(self, call: Call) -> Any:
        return self._send(call)

    def run(self, kind: str, model: str, inputs: list[str] | str, params: dict[str, Any] | None = None,
            timeout: float | None = 300.0, priority: str | None = None, raise_on_failure: bool = True) -> Job:
        """Submit a job and return it finished (held with `Prefer: wait`, then polled). A failed
        or cancelled job raises JobFailed unless `raise_on_failure=False`."""
        deadline = Deadline(timeout)
        job = self.jobs.create(kind, model, inputs, params, priority=priority, wait=deadline.hold())
        return finished(self.jobs.wait(job.id, deadline.left(), job=job), raise_on_failure)

    def stream(self, kind: str, model: str, inputs: list[str] | str, params: dict[str, Any] | None = None,
               priority: str | None = None) -> Iterator[Event]:
        """Submit a job answered with its event stream (`"stream": true`): status, tokens or
        sentences, then `final` with the whole job."""
        body = calls.job_body(kind, model, inputs, params, priority, None)
        return self.jobs._events(calls.stream_job(body), StreamCursor())

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Jobs:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, kind: str, model: str, inputs: list[str] | str, params: dict[str, Any] | None = None,
               priority: str | None = None, webhook_url: str | None = None, wait: float | None = None,
               idempotency_key: str | None = None) -> Job:
        """Queue a job (`wait`: hold the request up to that many seconds for it to end)."""
        body = calls.job_body(kind, model, inputs, params, priority, webhook_url)
        return self._client.call(calls.create_job(body, wait, idempotency_key))

    def get(self, job_id: str, wait: float | None = None) -> Job:
        return self._client.call(calls.get_job(job_id, wait))

    def list(self, status: str | None = None, kind: str | None = None, model: str | None = None,
             limit: int | None = None, cursor: str | None = None) -> Page:
        return self._client.call(calls.list_jobs(status, kind, model, limit, cursor))

    def cancel(self, job_id: str) -> Job:
        return self._client.call(calls.cancel_job(job_id))

    def wait(self, job_id: str, timeout: float | None = 300.0, job: Job | None = None) -> Job:
        """The job once it has ended; WaitTimeout (carrying its last state) after `timeout` seconds."""
        deadline = Deadline(timeout)
        while job is None or not job.done:
            if job is not None and deadline.passed:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout}s", job=job)
            started = time.monotonic()
            job = self.get(job_id, wait=deadline.hold())
            time.sleep(deadline.next_poll(time.monotonic() - started > 0.5 * deadline.hold()))
        return job

    def stream(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events (`GET /v1/jobs/{id}/events`), from `last_event_id` on when given;
        a dropped connection resumes where it stopped."""
        return self._events(calls.job_events(job_id, last_event_id), StreamCursor(job_id, last_event_id))

    def _events(self, call: Call, cursor: StreamCursor) -> Iterator[Event]:
        attempts = 0
        while not cursor.ended:
            error: httpx.TransportError | None = None
            try:
                response = self._client._send.send(call, stream=True)
                try:
                    for sse in EventSource(response).iter_sse():
                        yield cursor.see(sse)
                        if cursor.ended:
                            return
                finally:
                    response.close()
            except httpx.TransportError as exc:
                error = exc
            attempts += 1
            if not cursor.can_resume(error, attempts, self._client.retries):
                if error is not None:
                    raise error
                return  # closed before the end, and not resumable
            assert cursor.job_id is not None
            call = calls.job_events(cursor.job_id, cursor.last_event_id)


class Models:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[Model]:
        return self._client.call(calls.list_models())

    def get(self, name: str) -> Model:
        return self._client.call(calls.get_model(name))

    def promote(self, name: str, version: int, alias: str = "production", reason: str = "") -> Alias:
        """Point `alias` at `version`; new jobs resolve to it at once (no policy, no warm-up)."""
        return self._client.call(calls.move_alias(name, version, alias, reason))

    def rollback(self, name: str, version: int | None = None, alias: str = "production",
                 reason: str = "rollback") -> Alias:
        """Restore the alias's state before its last change in one call (version, shadow, canary,
        policy); with `version`, point the alias at that version instead."""
        if version is not None:
            return self.promote(name, version, alias, reason)
        return self._client.call(calls.roll_back(name, alias, reason))

    def rollout(self, name: str, alias: str = "production") -> AliasState:
        """The alias's live rollout: shadow agreement, canary arms, policy, warm workers."""
        return self._client.call(calls.alias_state(name, alias))

    def set_rollout(self, name: str, alias: str = "production", *, shadow_version: int | None = None,
                    shadow_rate: float = 1.0, canary: dict[int, int] | None = None,
                    policy: dict[str, Any] | None = None, reason: str = "") -> AliasState:
        """Replace the alias's rollout: a shadow version and the share of jobs it also runs,
        canary weights per version ({3: 90, 4: 10}), the policy a promotion on evidence needs
        (min_shadow_inputs, min_agreement, min_canary_jobs, max_failure_ratio_increase)."""
        body = calls.rollout_body(shadow_version, shadow_rate, canary, policy, reason)
        return self._client.call(calls.set_rollout(name, alias, body))

    def promote_on_evidence(self, name: str, version: int | None = None, alias: str = "production",
                            force: bool = False, reason: str = "") -> Promotion:
        """Promote when the policy's live evidence holds (else Conflict `promotion_refused`, or
        `force`), after the workers have warmed the version; default: the shadow version."""
        return self._client.call(calls.promote_on_evidence(name, alias, version, force, reason))


class Training:
    def __init__(self, client: Client) -> None:
        self._client = client

    def start(self, task: str, preset: str | None = None, model_name: str | None = None,
              overrides: dict[str, Any] | None = None) -> TrainingRun:
        return self._client.call(calls.start_training(task, preset, model_name, overrides))

    def get(self, run_id: str) -> TrainingRun:
        return self._client.call(calls.get_training(run_id))

    def list(self, status: str | None = None, limit: int | None = None) -> list[TrainingRun]:
        return self._client.call(calls.list_training(status, limit))

    def cancel(self, run_id: str) -> TrainingRun:
        """Queued: never starts. Running: stops at its next batch and ends cancelled."""
        return self._client.call(calls.cancel_training(run_id))


class Batches:
    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(self, path: str | Path, format: str | None = None) -> File:
        """Upload a corpus file (jsonl, conllu or text; by default from its extension)."""
        return self._client.call(calls.upload_file(path, format))

    def create(self, kind: str, model: str, input_file: str, params: dict[str, Any] | None = None,
               priority: str | None = None, completion_window: str | None = None, webhook_url: str | None = None,
               on_malformed: str | None = None, idempotency_key: str | None = None) -> Batch:
        body = calls.batch_body(kind, model, input_file, params, priority, completion_window, webhook_url,
                                on_malformed)
        return self._client.call(calls.create_batch(body, idempotency_key))

    def get(self, batch_id: str, wait: float | None = None) -> Batch:
        """The batch (`wait`: hold the request up to that many seconds for it to end)."""
        return self._client.call(calls.get_batch(batch_id, wait))

    def list(self, status: str | None = None, kind: str | None = None, model: str | None = None,
             limit: int | None = None, cursor: str | None = None) -> Page:
        return self._client.call(calls.list_batches(status, kind, model, limit, cursor))

    def cancel(self, batch_id: str) -> Batch:
        return self._client.call(calls.cancel_batch(batch_id))

    def wait(self, batch_id: str, timeout: float | None = None, progress: ProgressCallback | None = None,
             interval: float = 2.0) -> Batch:
        """Look until the batch has ended, calling `progress(batch)` after each look: the first at
        once, each next one held by the server up to `interval` seconds (`Prefer: wait`), so the
        end is seen the moment it comes. A server that does not hold it is polled every `interval`."""
        deadline, look = Deadline(timeout), BatchLooks(interval)
        while True:
            started = time.monotonic()
            batch = self.get(batch_id, wait=look.hold)
            look.looked(time.monotonic() - started)
            if progress is not None:
                progress(batch)
            if batch.done:
                return batch
            if deadline.passed:
                raise WaitTimeout(f"batch {batch_id} still {batch.status} after {timeout}s", batch=batch)
            time.sleep(look.next(deadline))

    def download(self, batch_id: str, path: str | Path | None = None, format: str | None = None,
                 errors: bool = False) -> bytes:
        """The ended batch's output (or its errors), written to `path` too when given."""
        content: bytes = self._client.call(calls.batch_errors(batch_id) if errors else calls.batch_output(batch_id,
                                                                                                           format))
        if path is not None:
            Path(path).write_bytes(content)
        return content

    def file(self, file_id: str) -> File:
        return self._client.call(calls.get_file(file_id))

    def file_content(self, file_id: str) -> bytes:
        return self._client.call(calls.file_content(file_id))
