"""A key's limits hold across API processes: two `seqserve api` processes on their own ports
count one key's submissions in the same Redis counters."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from seqserve.shared.auth.limits import KeyLimits
from seqserve.shared.auth.service import create
from seqserve.shared.db.session import session_scope
from tests import processes

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def two_apis(env: dict[str, str], logs: Path) -> Iterator[list[str]]:
    """Two independent API processes (not one port shared by uvicorn workers: here each
    request's process is known); yields their base URLs."""
    ports = [processes.free_port(), processes.free_port()]
    procs = [processes.start(["api", "--port", str(port)], env, logs / f"api-{port}.log") for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            processes.wait_http(f"http://127.0.0.1:{port}/healthz", proc, logs / f"api-{port}.log")
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for proc in procs:
            processes.stop(proc)


def test_two_api_processes_share_a_keys_limit(stack_env: dict[str, str], registered_model: str,
                                              tmp_path: Path) -> None:
    env = stack_env | {"SEQSERVE_RATE_LIMIT_PREFIX": f"test-limits:{uuid.uuid4().hex}"}
    with session_scope() as session:
        _, secret = create(session, "shared-limit", "red", ["jobs:write"], limits=KeyLimits("4/min", 7))
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"kind": "classify", "model": registered_model, "inputs": ["a fine film"]}
    with two_apis(env, tmp_path) as bases:
        answers = [httpx.post(f"{bases[i % 2]}/v1/jobs", json=body, headers=headers, timeout=30) for i in range(6)]
    assert [a.status_code for a in answers] == [202, 202, 202, 202, 429, 429], [a.text for a in answers]
    left = [int(re.search(r'"submissions";r=(\d+)', a.headers["RateLimit"]).group(1)) for a in answers]  # type: ignore[union-attr]
    assert left == [3, 2, 1, 0, 0, 0]  # one count whichever process answered
    assert all('"inputs";q=7;w=60' in a.headers["RateLimit-Policy"] for a in answers)
    assert answers[5].json()["error"]["field"] == "submissions" and int(answers[5].headers["Retry-After"]) >= 1
