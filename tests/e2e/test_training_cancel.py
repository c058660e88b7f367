"""Cancelling training runs and following their progress, through a real `seqserve trainer`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from seqserve.shared.db.models import AuditEvent, ModelVersion
from seqserve.shared.db.session import session_scope
from tests import processes

pytestmark = pytest.mark.e2e

# Long enough to be caught running (many small batches, epochs on end), cheap per batch.
LONG = {"max_train_examples": 20000, "batch_size": 16, "epochs": 50, "patience": 50,
        "embedding_dim": 16, "hidden_size": 16}


@pytest.fixture()
def trainer(db: str, stack_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    env = stack_env | {"SEQSERVE_TRAINER_METRICS_PORT": "0"}
    with processes.running(env, tmp_path, ["trainer"]) as base:
        yield base


def _until(base: str, run_id: str, done: Callable[[dict], bool], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = processes.get(f"{base}/v1/training-runs/{run_id}").json()
        if done(run):
            return run
        time.sleep(0.3)
    raise TimeoutError(f"training run {run_id}: {run['status']}, progress {run['progress']}")


def _submit(base: str, name: str, overrides: dict) -> str:
    response = processes.post(f"{base}/v1/training-runs", json={"task": "classify", "model_name": name,
                                                                 "overrides": overrides})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_progress_then_cancel_a_running_and_a_queued_run(trainer: str) -> None:
    running_id = _submit(trainer, "long-sst2", LONG)
    first = _until(trainer, running_id, lambda r: r["status"] == "running" and r["progress"] is not None)
    queued_id = _submit(trainer, "never-sst2", LONG)  # the trainer runs one at a time: this one waits
    progress = first["progress"]
    assert progress["epoch"] == 1 and progress["epochs"] == 50
    assert 0 < progress["batches_done"] <= progress["batches_total"] == 1250  # 20000 / 16
    assert progress["examples_per_s"] > 0 and progress["eta_s"] >= progress["epoch_eta_s"] > 0
    later = _until(trainer, running_id, lambda r: r["progress"]["updated_at"] != progress["updated_at"])
    assert later["progress"]["batches_done"] > progress["batches_done"] or later["progress"]["epoch"] > 1
    gap = datetime.fromisoformat(later["progress"]["updated_at"]) - datetime.fromisoformat(progress["updated_at"])
    assert gap.total_seconds() >= 0.9  # written once a second at most, not per batch

    queued = processes.post(f"{trainer}/v1/training-runs/{queued_id}/cancel")
    assert queued.status_code == 200, queued.text
    assert queued.json()["status"] == "cancelled" and queued.json()["started_at"] is None
    cancelling = processes.post(f"{trainer}/v1/training-runs/{running_id}/cancel").json()
    assert cancelling["status"] == "running" and cancelling["cancel_requested_at"] is not None
    asked = time.monotonic()
    stopped = _until(trainer, running_id, lambda r: r["status"] != "running", timeout=60)
    assert stopped["status"] == "cancelled" and stopped["model_version"] is None, stopped["error"]
    assert time.monotonic() - asked < 20  # at its next batch, not at the end of 50 epochs
    assert stopped["finished_at"] is not None and len(stopped["history"]) < 50

    time.sleep(2)  # the queued run's message reaches the trainer, which skips it
    never = processes.get(f"{trainer}/v1/training-runs/{queued_id}").json()
    assert never["status"] == "cancelled" and never["started_at"] is None
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
        audited = session.scalars(select(AuditEvent.target).where(AuditEvent.action == "training.cancelled")).all()
    assert sorted(audited) == sorted([running_id, queued_id])
    again = processes.post(f"{trainer}/v1/training-runs/{running_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "training_run_finished"
    listed = processes.get(f"{trainer}/v1/training-runs", params={"status": "cancelled"}).json()
    assert {r["id"] for r in listed} == {running_id, queued_id}


def test_cancel_needs_training_write_and_an_existing_run(trainer: str) -> None:
    from tests.conftest import create_key

    missing = processes.post(f"{trainer}/v1/training-runs/{uuid.uuid4()}/cancel")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "id"
    run_id = _submit(trainer, "scoped-sst2", LONG | {"epochs": 1})
    reader = {"Authorization": f"Bearer {create_key('red', ('models:read',))}"}
    refused = processes.post(f"{trainer}/v1/training-runs/{run_id}/cancel", headers=reader)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert processes.post(f"{trainer}/v1/training-runs/{run_id}/cancel").status_code == 200
    _until(trainer, run_id, lambda r: r["status"] == "cancelled", timeout=60)


def test_a_run_whose_data_is_missing_is_refused_at_submit(trainer: str, tmp_path: Path) -> None:
    absent = tmp_path / "nowhere" / "train.tsv"
    response = processes.post(f"{trainer}/v1/training-runs", json={
        "task": "classify", "overrides": {"train_file": str(absent)}})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "training_data_missing" and error["field"] == "overrides.train_file"
    assert str(absent) in error["message"] and "SEQSERVE_DATA_DIR" in error["message"]
    assert "seqserve data download" in error["message"]
    assert processes.get(f"{trainer}/v1/training-runs").json() == []  # no row
