"""`seqserve up` on Postgres and Redis with the default model already registered: it runs a
trainer that consumes `POST /v1/training-runs`, keeps canary lines out of its output at the
default log level, and prints its banner last, again when a model version is registered."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from seqserve.shared.threads import affinity_cores
from tests import processes

pytestmark = pytest.mark.e2e

TINY = {"max_train_examples": 400, "epochs": 1, "embedding_dim": 16, "hidden_size": 16}
BANNER_START = "==== seqserve is up"


def _last_block(text: str) -> str:
    return text.rstrip().split("\n\n")[-1]


def _wait_for(predicate, proc, log: Path, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, log.read_text()[-4000:]
        time.sleep(0.3)
    raise TimeoutError(f"{what}:\n{log.read_text()[-4000:]}")


def test_up_trains_over_http_and_its_banner_comes_last(
    registered_model: str, stack_env: dict[str, str], tmp_path: Path
) -> None:
    env = stack_env | {
        "SEQSERVE_DEFAULT_MODEL": registered_model, "SEQSERVE_VAR_DIR": str(tmp_path / "var"),
        "SEQSERVE_CANARY_INTERVAL_SECONDS": "0.5", "SEQSERVE_WORKER_METRICS_PORT": "0",
        "SEQSERVE_TRAINER_METRICS_PORT": "0", "SEQSERVE_LOG_LEVEL": "INFO",
        "SEQSERVE_TORCH_THREADS": "0", "SEQSERVE_CGROUP_DIR": str(tmp_path),  # auto; no quota file: unlimited
        "SEQSERVE_LOAD_AWARE_THREADS": "false",  # counts that do not depend on the neighbours
    }
    port = processes.free_port()
    log = tmp_path / "up.log"
    proc = processes.start(["up", "--port", str(port)], env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: BANNER_START in log.read_text(), proc, log, 180, "no banner")
        time.sleep(5)  # ten canary rounds: at INFO none of them may print a line
        output = log.read_text()
        assert _last_block(output).startswith(BANNER_START), output[-3000:]
        banner = _last_block(output)
        assert f"API {base}" in banner and f"console: {base}/console#key=" in banner
        assert f"admin key: in {tmp_path / 'var' / 'admin.key'}" in banner and "Prefer: wait=10" in banner
        assert f"classify   {registered_model}" in banner and "serving version 1" in banner
        assert "tag        ewt-upos-tagger" in banner and "not trained yet: seqserve train --task tag" in banner
        # up divides the machine: the worker's child has the cores, the trainer shares them with it.
        cores = affinity_cores()
        seen = f"{cores} cores seen, cpu quota none, load 0.0"
        assert f"worker threads: {seen}, 1 processes sharing -> {cores} torch threads (auto)" in output
        assert f"trainer threads: {seen}, 2 processes sharing -> {max(1, cores // 2)} torch threads (auto)" in output
        # Celery's startup lists the canary task once; no line per canary message may follow.
        per_message = [line for line in output.splitlines() if "canary" in line
                       and any(word in line for word in ("received", "succeeded", "Sending due task"))]
        assert per_message == [], per_message[:3]
        assert "Task seqserve" not in output  # Celery's received/succeeded lines, any task

        body = {"task": "classify", "model_name": "up-sst2", "overrides": TINY}
        response = processes.post(f"{base}/v1/training-runs", json=body)
        assert response.status_code == 202, response.text
        run_id = response.json()["id"]
        _wait_for(lambda: processes.get(f"{base}/v1/training-runs/{run_id}").json()["status"] != "queued",
                  proc, log, 60, "the run was never started: no trainer consumes the training queue")
        _wait_for(lambda: output.count(BANNER_START) < log.read_text().count(BANNER_START), proc, log, 240,
                  "no banner after the version was registered")
        run = processes.get(f"{base}/v1/training-runs/{run_id}").json()
        assert run["status"] == "succeeded" and run["model_version"] == 1, run["error"]
        time.sleep(2)
        assert _last_block(log.read_text()).startswith(BANNER_START)
    finally:
        processes.stop(proc, timeout=30)
    assert proc.returncode == 0, log.read_text()[-3000:]
