"""Deliver a finished job's final state to its webhook URL, signed, with recorded attempts."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import httpx

from seqserve.shared.config import Settings
from seqserve.shared.db.models import FINAL_JOB_STATUSES, JobStatus, WebhookDelivery
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs.schemas import JobRead
from seqserve.shared.metrics import WEBHOOK_DELIVERIES_TOTAL
from seqserve.shared.webhooks import sign


@dataclass(frozen=True)
class DeliveryResult:
    delivered: bool
    retry_in: float | None  # seconds until the next attempt; None: no more attempts


def _payload(job_id: uuid.UUID) -> tuple[str, bytes, int] | None:
    with session_scope() as session:
        job = jobs_repo.get(session, job_id)
        if job is None or job.webhook_url is None or JobStatus(job.status) not in FINAL_JOB_STATUSES:
            return None
        if job.webhook_status == "delivered":
            return None
        body = json.dumps(JobRead.from_row(job).model_dump(mode="json"), separators=(",", ":")).encode()
        attempt = len(jobs_repo.deliveries(session, job_id)) + 1
        return job.webhook_url, body, attempt


def _post(url: str, body: bytes, settings: Settings) -> tuple[int | None, str | None]:
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Seqserve-Event": "job.finished",
        "X-Seqserve-Delivery": str(uuid.uuid4()),
        "X-Seqserve-Timestamp": str(timestamp),
        "X-Seqserve-Signature": sign(settings.webhook_secret, timestamp, body),
    }
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=settings.webhook_timeout_seconds)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"receiver answered {response.status_code}"


def deliver(job_id: uuid.UUID, settings: Settings) -> DeliveryResult:
    """One attempt; says when to try again (exponential backoff, capped attempts)."""
    target = _payload(job_id)
    if target is None:
        return DeliveryResult(False, None)
    url, body, attempt = target
    started = time.perf_counter()
    status_code, error = _post(url, body, settings)
    delivered = error is None
    out_of_attempts = not delivered and attempt >= settings.webhook_max_attempts
    with session_scope() as session:
        jobs_repo.add_delivery(session, WebhookDelivery(
            job_id=job_id, attempt=attempt, status_code=status_code, error=error,
            duration_seconds=time.perf_counter() - started,
        ))
        job = jobs_repo.get(session, job_id)
        assert job is not None
        job.webhook_status = "delivered" if delivered else ("failed" if out_of_attempts else "retrying")
    WEBHOOK_DELIVERIES_TOTAL.labels("delivered" if delivered else "failed").inc()
    if delivered or out_of_attempts:
        return DeliveryResult(delivered, None)
    return DeliveryResult(False, settings.webhook_backoff_seconds * 2 ** (attempt - 1))
