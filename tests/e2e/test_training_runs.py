"""Training over HTTP through a real `seqserve trainer` process, and beat driving the queues."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from seqserve.shared.db.models import ModelVersion, QueueHeartbeat
from seqserve.shared.db.session import session_scope
from tests import processes

pytestmark = pytest.mark.e2e

TINY = {"max_train_examples": 400, "epochs": 1, "embedding_dim": 16, "hidden_size": 16}


@pytest.fixture(scope="module")
def trainer_stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with processes.running(stack_env, tmp_path_factory.mktemp("trainer-logs"), ["trainer"]) as base:
        yield base


def _wait_run(base: str, run_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = processes.get(f"{base}/v1/training-runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed"):
            return run
        time.sleep(0.5)
    raise TimeoutError(f"training run {run_id} still {run['status']}")


def test_training_run_over_http_registers_and_promotes(db: str, trainer_stack: str) -> None:
    body = {"task": "classify", "preset": "quick", "model_name": "http-sst2", "overrides": TINY}
    response = processes.post(f"{trainer_stack}/v1/training-runs", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/training-runs/{response.json()['id']}"
    run = _wait_run(trainer_stack, response.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    assert run["model_version"] == 1
    assert [entry["epoch"] for entry in run["history"]] == [1]
    assert 0.0 <= run["metrics"]["accuracy"] <= 1.0
    model = processes.get(f"{trainer_stack}/v1/models/http-sst2").json()
    assert model["aliases"] == {"production": 1}
    version = model["versions"][0]
    assert version["training_run_id"] == run["id"] and len(version["sha256"]) == 64
    curve = processes.get(f"{trainer_stack}{version['artifacts']['training_curve']}")
    assert curve.status_code == 200 and curve.content.startswith(b"\x89PNG")
    listed = processes.get(f"{trainer_stack}/v1/training-runs", params={"status": "succeeded"}).json()
    assert [r["id"] for r in listed] == [run["id"]]


def test_a_run_on_bad_data_fails_with_the_file_named_and_registers_nothing(
    db: str, trainer_stack: str, tmp_path: Path
) -> None:
    bad = tmp_path / "train.tsv"
    bad.write_text("sentence\tlabel\na fine film\t1\nbroken row without label\n")
    body = {"task": "classify", "model_name": "bad-data", "overrides": TINY | {"train_file": str(bad)}}
    run = _wait_run(trainer_stack, processes.post(f"{trainer_stack}/v1/training-runs", json=body).json()["id"])
    assert run["status"] == "failed"
    assert "DataFormatError" in run["error"] and "train.tsv:3" in run["error"]
    assert str(tmp_path) not in run["error"]  # the file by name, not the server's directories
    assert run["model_version"] is None
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [({"task": "summarize"}, "task"), ({"task": "classify", "preset": "huge"}, "preset"),
     ({"task": "classify", "model_name": "bad name"}, "model_name"), ({"task": "classify", "x": 1}, "x")],
)
def test_bad_training_requests_are_422(db: str, trainer_stack: str, body: dict, field: str) -> None:
    response = processes.post(f"{trainer_stack}/v1/training-runs", json=body)
    assert response.status_code == 422 and response.json()["error"]["field"] == field
    assert processes.get(f"{trainer_stack}/v1/training-runs/{uuid.uuid4()}").status_code == 404


def test_beat_sends_canaries_that_a_worker_answers(db: str, stack_env: dict[str, str], tmp_path: Path) -> None:
    env = stack_env | {"SEQSERVE_CANARY_INTERVAL_SECONDS": "0.5", "SEQSERVE_VAR_DIR": str(tmp_path / "var"),
                       "SEQSERVE_WORKER_METRICS_PORT": "0"}
    worker = processes.start(["worker", "--concurrency", "1"], env, tmp_path / "worker.log")
    beat = processes.start(["beat"], env, tmp_path / "beat.log")
    try:
        deadline = time.monotonic() + 60
        consumed: list[str] = []
        while time.monotonic() < deadline and len(consumed) < 3:
            with session_scope() as session:
                consumed = [row.queue for row in session.scalars(select(QueueHeartbeat)) if row.consumed_at]
            time.sleep(0.3)
    finally:
        processes.stop(beat)
        processes.stop(worker)
    assert sorted(consumed) == ["inference.high", "inference.low", "inference.normal"], (
        (tmp_path / "beat.log").read_text()[-2000:]
    )
