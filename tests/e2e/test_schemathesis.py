"""Schemathesis against a real `seqserve api` (registered model, real Postgres and Redis):
generated requests from /openapi.json never get a 5xx, and every answer matches the status
codes, content types and schemas the document declares. Bounded examples keep it short."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests import processes

pytestmark = pytest.mark.e2e

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.skipif(importlib.util.find_spec("schemathesis") is None,
                    reason="schemathesis is not installed (the `test` extra adds it: pip install -e '.[test]')")
def test_generated_requests_get_no_5xx_and_match_the_schema(
        stack_env: dict[str, str], registered_model: str, tmp_path: Path) -> None:
    # Generated `Prefer: wait=N` must not hold requests for a minute: no worker runs here.
    env = stack_env | {"SEQSERVE_MAX_WAIT_SECONDS": "0.5", "SEQSERVE_JOB_STREAM_MAX_SECONDS": "1"}  # streams too
    with processes.running(env, tmp_path) as base:
        # One worker: with two threads, CPython 3.11's compile() inside hypothesis (describing a
        # filter lambda) once raised "SystemError: AST constructor recursion depth mismatch" in CI.
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json", "--checks", CHECKS,
                   "--max-examples", "20", "--phases", "examples,coverage,fuzzing", "--workers", "1",
                   "--request-timeout", "20", "--seed", "14", "--generation-database", "none",
                   "--header", f"Authorization: Bearer {processes.STACK_KEY}"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
