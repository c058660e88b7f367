"""The webhook sender at send time: every resolved address is checked, the request goes to
the checked address (no second DNS answer), no redirect is followed, and a refused target
fails the delivery with its reason recorded. Real Postgres; a local receiver on loopback."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from seqserve.services.worker.webhooks import deliver
from seqserve.shared.config import Settings, get_settings, reset_settings
from seqserve.shared.db.models import JobStatus
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import repository as jobs_repo
from tests.conftest import claim_group_of, create_key, finish

HOSTS = Path("/etc/hosts")


class _Receiver(BaseHTTPRequestHandler):
    hosts: list[str] = []
    answer = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).hosts.append(self.headers["Host"])
        self.send_response(type(self).answer)
        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[int]:
    _Receiver.hosts, _Receiver.answer = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


def _settings(monkeypatch: pytest.MonkeyPatch, allow: str = "") -> Settings:
    monkeypatch.setenv("SEQSERVE_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("SEQSERVE_WEBHOOK_ALLOW_NETWORKS", allow)
    reset_settings()
    return get_settings()


def _finished_job(model: str, url: str) -> uuid.UUID:
    """A job with a webhook, submitted through the API (a name passes there) and finished."""
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as client:
        response = client.post("/v1/jobs", json={"kind": "classify", "model": model, "inputs": ["x"], "webhook_url": url})
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["id"])
    (claimed,) = claim_group_of(job_id)
    assert finish(claimed, JobStatus.succeeded, result=[{"label": "positive"}])
    return job_id


def _outcome(job_id: uuid.UUID) -> tuple[str | None, list[str | None]]:
    with session_scope() as session:
        job = jobs_repo.get(session, job_id)
        assert job is not None
        return job.webhook_status, [row.error for row in jobs_repo.deliveries(session, job_id)]


def test_a_name_resolving_to_loopback_fails_the_delivery_with_its_reason(
        registered_model: str, monkeypatch: pytest.MonkeyPatch, receiver: int) -> None:
    settings = _settings(monkeypatch)
    job_id = _finished_job(registered_model, f"http://hooks.example.com:{receiver}/hook")
    result = deliver(job_id, settings, resolve=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    assert not result.delivered and result.retry_in is None  # refused: no retries
    status, errors = _outcome(job_id)
    assert status == "failed"
    assert errors[0] is not None and errors[0].startswith("refused:") and "127.0.0.1" in errors[0]
    assert _Receiver.hosts == []


def test_the_request_goes_to_the_address_that_was_checked(
        registered_model: str, monkeypatch: pytest.MonkeyPatch, receiver: int) -> None:
    settings = _settings(monkeypatch, allow="127.0.0.0/8")
    answers = iter([["127.0.0.1"]])  # a second lookup (rebinding) would raise StopIteration
    job_id = _finished_job(registered_model, f"http://hooks.example.com:{receiver}/hook")
    result = deliver(job_id, settings, resolve=lambda host, port: next(answers))
    assert result.delivered
    assert _Receiver.hosts == [f"hooks.example.com:{receiver}"]  # the name travels in Host
    assert _outcome(job_id) == ("delivered", [None])


def test_redirects_are_not_followed(registered_model: str, monkeypatch: pytest.MonkeyPatch, receiver: int) -> None:
    settings = _settings(monkeypatch, allow="127.0.0.0/8")
    _Receiver.answer = 307
    job_id = _finished_job(registered_model, f"http://hooks.example.com:{receiver}/hook")
    result = deliver(job_id, settings, resolve=lambda host, port: ["127.0.0.1"])
    assert not result.delivered and result.retry_in is not None
    assert _Receiver.hosts == [f"hooks.example.com:{receiver}"]  # once: the Location was not fetched
    assert _outcome(job_id)[1] == ["receiver answered 307"]


@pytest.fixture()
def loopback_name() -> Iterator[str]:
    """A unique name that the system resolver (/etc/hosts) answers with 127.0.0.1."""
    name = f"seqserve-test-{uuid.uuid4().hex[:12]}.example.net"
    line = f"127.0.0.1 {name}\n"
    original = HOSTS.read_text()
    try:
        HOSTS.write_text(original + ("" if original.endswith("\n") else "\n") + line)
    except OSError as exc:
        pytest.skip(f"/etc/hosts is not writable here: {exc}")
    try:
        yield name
    finally:
        HOSTS.write_text("".join(kept for kept in HOSTS.read_text().splitlines(keepends=True) if kept != line))


def test_dns_answering_loopback_through_the_system_resolver_is_refused(
        registered_model: str, monkeypatch: pytest.MonkeyPatch, receiver: int, loopback_name: str) -> None:
    settings = _settings(monkeypatch)
    job_id = _finished_job(registered_model, f"http://{loopback_name}:{receiver}/hook")
    assert not deliver(job_id, settings).delivered
    status, errors = _outcome(job_id)
    assert status == "failed" and errors[0] is not None and "127.0.0.1 is an internal address (loopback)" in errors[0]
    assert _Receiver.hosts == []
