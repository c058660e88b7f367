"""Deliver a finished job's final state to its webhook URL, signed, with recorded attempts."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from seqserve.shared.config import Settings
from seqserve.shared.db.models import FINAL_JOB_STATUSES, JobStatus, WebhookDelivery
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs.schemas import JobRead
from seqserve.shared.metrics import WEBHOOK_DELIVERIES_TOTAL
from seqserve.shared.webhook_targets import RefusedTarget, Resolver, check_url, parse_networks, resolve_checked, system_resolver
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


@dataclass(frozen=True)
class PinnedRequest:
    """A request to the address that was checked, with the URL's host kept for Host and TLS."""

    url: str
    host_header: str
    sni_hostname: str


def pin(url: str, settings: Settings, resolve: Resolver = system_resolver) -> PinnedRequest:
    """Check `url` and every address its host resolves to (RefusedTarget when any is
    internal); the request then connects to the checked address, so a second DNS answer
    (rebinding) can not send it elsewhere."""
    allow = parse_networks(settings.webhook_allow_networks)
    check_url(url, allow)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_checked(host, port, allow, resolve)
    literal = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
    return PinnedRequest(pinned, parts.netloc.rsplit("@", 1)[-1], host)


def _post(url: str, body: bytes, settings: Settings, resolve: Resolver) -> tuple[int | None, str | None, bool]:
    """(status code, error, retry): a refused target is final, a network error retried."""
    try:
        target = pin(url, settings, resolve)
    except RefusedTarget as exc:
        return None, f"refused: {exc}", False
    except OSError as exc:  # DNS failure: perhaps temporary
        return None, f"could not resolve the webhook host: {exc}", True
    timestamp = int(time.time())
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "X-Seqserve-Event": "job.finished",
        "X-Seqserve-Delivery": str(uuid.uuid4()),
        "X-Seqserve-Timestamp": str(timestamp),
        "X-Seqserve-Signature": sign(settings.webhook_secret, timestamp, body),
    }
    try:
        # No redirects: a 3xx could point inside; it counts as a failed attempt.
        with httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as client:
            response = client.post(target.url, content=body, headers=headers,
                                   extensions={"sni_hostname": target.sni_hostname})
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}", True
    if 200 <= response.status_code < 300:
        return response.status_code, None, False
    return response.status_code, f"receiver answered {response.status_code}", True


def deliver(job_id: uuid.UUID, settings: Settings, resolve: Resolver = system_resolver) -> DeliveryResult:
    """One attempt; says when to try again (exponential backoff, capped attempts). A target
    that resolves inside fails at once, its reason in the delivery row's `error`."""
    target = _payload(job_id)
    if target is None:
        return DeliveryResult(False, None)
    url, body, attempt = target
    started = time.perf_counter()
    status_code, error, retry = _post(url, body, settings, resolve)
    delivered = error is None
    out_of_attempts = not delivered and (not retry or attempt >= settings.webhook_max_attempts)
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
