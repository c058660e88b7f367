"""Every API request the clients make, built once (the sync and async clients send the same `Call`s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from seqserve_client._transport import Call, create_headers, params
from seqserve_client.types import Alias, AliasState, Batch, File, Job, Model, Page, Promotion, TrainingRun

PROMOTE_READ_TIMEOUT = 180.0  # seconds: above the server's warm-up timeout (30 s by default)
WAIT_CAP = 60.0  # seconds: the most `Prefer: wait` the server honours (SEQSERVE_MAX_WAIT_SECONDS)


def _job(response: httpx.Response) -> Job:
    return Job.from_json(response.json())


def _jobs_page(response: httpx.Response) -> Page:
    body = response.json()
    return Page([Job.from_json(item) for item in body["items"]], body.get("next_cursor"))


def _batches_page(response: httpx.Response) -> Page:
    body = response.json()
    return Page([Batch.from_json(item) for item in body["items"]], body.get("next_cursor"))


def _batch(response: httpx.Response) -> Batch:
    return Batch.from_json(response.json())


def _bytes(response: httpx.Response) -> bytes:
    return response.content


def prefer_wait(seconds: float | None) -> dict[str, str]:
    if not seconds or seconds <= 0:
        return {}
    return {"Prefer": f"wait={min(seconds, WAIT_CAP):g}"}


def job_body(kind: str, model: str, inputs: list[str] | str, params_: dict[str, Any] | None, priority: str | None,
             webhook_url: str | None, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "model": model, "inputs": [inputs] if isinstance(inputs, str) else inputs}
    if params_:
        body["params"] = params_
    if priority:
        body["priority"] = priority
    if webhook_url:
        body["webhook_url"] = webhook_url
    if stream:
        body["stream"] = True
    return body


def create_job(body: dict[str, Any], wait: float | None = None, idempotency_key: str | None = None) -> Call:
    headers = create_headers(idempotency_key, **prefer_wait(wait))
    return Call("POST", "/v1/jobs", _job, json=body, headers=headers, timeout=_read_timeout(wait))


def stream_job(body: dict[str, Any], idempotency_key: str | None = None) -> Call:
    headers = create_headers(idempotency_key, Accept="text/event-stream")
    return Call("POST", "/v1/jobs", json={**body, "stream": True}, headers=headers, timeout=_STREAM_READ)


def job_events(job_id: str, last_event_id: str | None = None) -> Call:
    headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_event_id} if last_event_id else {})
    return Call("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=_STREAM_READ)


# The server sends a keep-alive comment every 15 s while a stream is quiet.
_STREAM_READ = 60.0


def _read_timeout(wait: float | None) -> float | None:
    return min(wait, WAIT_CAP) + 10 if wait else None


def get_job(job_id: str, wait: float | None = None) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}", _job, headers=prefer_wait(wait), timeout=_read_timeout(wait))


def list_jobs(status: str | None, kind: str | None, model: str | None, limit: int | None, cursor: str | None) -> Call:
    return Call("GET", "/v1/jobs", _jobs_page, params=params(status=status, kind=kind, model=model, limit=limit,
                                                             cursor=cursor))


def cancel_job(job_id: str) -> Call:
    return Call("POST", f"/v1/jobs/{job_id}/cancel", _job)


def list_models() -> Call:
    return Call("GET", "/v1/models", lambda r: [Model.from_json(m) for m in r.json()])


def get_model(name: str) -> Call:
    return Call("GET", f"/v1/models/{name}", lambda r: Model.from_json(r.json()))


def move_alias(name: str, version: int, alias: str, reason: str) -> Call:
    return Call("PUT", f"/v1/models/{name}/aliases/{alias}", lambda r: Alias.from_json(r.json()),
                json={"version": version, "reason": reason})


def alias_state(name: str, alias: str) -> Call:
    return Call("GET", f"/v1/models/{name}/aliases/{alias}", lambda r: AliasState.from_json(r.json()))


def rollout_body(shadow_version: int | None, shadow_rate: float, canary: dict[int, int] | None,
                 policy: dict[str, Any] | None, reason: str) -> dict[str, Any]:
    """The whole rollout of an alias (what is not given is cleared: no shadow, no split, no policy)."""
    shadow = None if shadow_version is None else {"version": shadow_version, "rate": shadow_rate}
    return {"shadow": shadow, "canary": {str(v): w for v, w in (canary or {}).items()}, "policy": policy or {},
            "reason": reason}


def set_rollout(name: str, alias: str, body: dict[str, Any]) -> Call:
    return Call("PUT", f"/v1/models/{name}/aliases/{alias}/rollout", lambda r: AliasState.from_json(r.json()),
                json=body)


def promote_on_evidence(name: str, alias: str, version: int | None, force: bool, reason: str) -> Call:
    body: dict[str, Any] = {"force": force, "reason": reason}
    if version is not None:
        body["version"] = version
    # The server waits for warm workers (SEQSERVE_ROLLOUT_WARMUP_TIMEOUT_SECONDS) before it answers.
    return Call("POST", f"/v1/models/{name}/aliases/{alias}/promote", lambda r: Promotion.from_json(r.json()),
                json=body, timeout=PROMOTE_READ_TIMEOUT)


def roll_back(name: str, alias: str, reason: str) -> Call:
    return Call("POST", f"/v1/models/{name}/aliases/{alias}/rollback", lambda r: Alias.from_json(r.json()),
                json={"reason": reason})


def start_training(task: str, preset: str | None, model_name: str | None, overrides: dict[str, Any] | None) -> Call:
    body: dict[str, Any] = {"task": task, "overrides": overrides or {}}
    if preset:
        body["preset"] = preset
    if model_name:
        body["model_name"] = model_name
    # Training runs take no Idempotency-Key: a create is not retried after it may have been sent.
    return Call("POST", "/v1/training-runs", lambda r: TrainingRun.from_json(r.json()), json=body)


def get_training(run_id: str) -> Call:
    return Call("GET", f"/v1/training-runs/{run_id}", lambda r: TrainingRun.from_json(r.json()))


def cancel_training(run_id: str) -> Call:
    return Call("POST", f"/v1/training-runs/{run_id}/cancel", lambda r: TrainingRun.from_json(r.json()))


def list_training(status: str | None, limit: int | None) -> Call:
    return Call("GET", "/v1/training-runs", lambda r: [TrainingRun.from_json(t) for t in r.json()],
                params=params(status=status, limit=limit))


def upload_file(path: str | Path, format: str | None = None, idempotency_key: str | None = None) -> Call:
    """Reads the file whole: a retry must send the same bytes again."""
    path = Path(path)
    files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
    return Call("POST", "/v1/files", lambda r: File.from_json(r.json()), files=files,
                data=params(format=format), headers=create_headers(idempotency_key), timeout=300)


def get_file(file_id: str) -> Call:
    return Call("GET", f"/v1/files/{file_id}", lambda r: File.from_json(r.json()))


def file_content(file_id: str) -> Call:
    return Call("GET", f"/v1/files/{file_id}/content", _bytes, timeout=300)


def batch_body(kind: str, model: str, input_file: str, params_: dict[str, Any] | None, priority: str | None,
               completion_window: str | None, webhook_url: str | None, on_malformed: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "model": model, "input_file": input_file}
    optional = {"params": params_, "priority": priority, "completion_window": completion_window,
                "webhook_url": webhook_url, "on_malformed": on_malformed}
    return body | {k: v for k, v in optional.items() if v}


def create_batch(body: dict[str, Any], idempotency_key: str | None = None) -> Call:
    return Call("POST", "/v1/batches", _batch, json=body, headers=create_headers(idempotency_key))


def get_batch(batch_id: str, wait: float | None = None) -> Call:
    return Call("GET", f"/v1/batches/{batch_id}", _batch, headers=prefer_wait(wait), timeout=_read_timeout(wait))


def list_batches(status: str | None, kind: str | None, model: str | None, limit: int | None,
                 cursor: str | None) -> Call:
    return Call("GET", "/v1/batches", _batches_page,
                params=params(status=status, kind=kind, model=model, limit=limit, cursor=cursor))


def cancel_batch(batch_id: str) -> Call:
    return Call("POST", f"/v1/batches/{batch_id}/cancel", _batch)


def batch_output(batch_id: str, format: str | None = None) -> Call:
    return Call("GET", f"/v1/batches/{batch_id}/output", _bytes, params=params(format=format), timeout=300)


def batch_errors(batch_id: str) -> Call:
    return Call("GET", f"/v1/batches/{batch_id}/errors", _bytes, timeout=300)
