"""A corpus batch on the embedded default: SQLite and the filesystem broker, with a real api,
worker and beat (the driver's conflict-tolerant chunk insert and its row lock on SQLite)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from seqserve.shared.config import reset_settings
from seqserve.shared.db.migrate import upgrade
from seqserve.shared.db.session import dispose_engines
from tests import processes
from tests.conftest import DATA_DIR, register_outcome, seed_stack_key

pytestmark = pytest.mark.e2e


def test_a_batch_runs_on_sqlite_and_the_filesystem_broker(tmp_path: Path, tiny_classifier: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'seqserve.db'}"
    env = {"SEQSERVE_DATABASE_URL": url, "SEQSERVE_BROKER_URL": "", "SEQSERVE_VAR_DIR": str(tmp_path / "var"),
           "SEQSERVE_DATA_DIR": str(DATA_DIR), "SEQSERVE_DEVICE": "cpu", "SEQSERVE_TORCH_THREADS": "1",
           "SEQSERVE_WORKER_METRICS_PORT": "0", "SEQSERVE_BATCH_CHUNK_INPUTS": '{"classify": 4}',
           "SEQSERVE_BATCH_DRIVER_INTERVAL_SECONDS": "0.5"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    dispose_engines()
    upgrade(url)
    seed_stack_key(url)
    register_outcome("tiny-sst2", "classify", tiny_classifier)
    dispose_engines()
    texts = [row.split("\t")[0].strip()
             for row in (DATA_DIR / "sst2" / "glue" / "dev.tsv").read_text().splitlines()[1:31]]
    (tmp_path / "logs").mkdir()
    with processes.running(env, tmp_path / "logs", ["worker", "--concurrency", "1"], ["beat"]) as base:
        upload = processes.post(f"{base}/v1/files", files={"file": ("dev.txt", "\n".join(texts).encode())})
        assert upload.status_code == 201, upload.text
        created = processes.post(f"{base}/v1/batches", json={"kind": "classify", "model": "tiny-sst2",
                                                              "input_file": upload.json()["id"]})
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + 180
        while (batch := processes.get(f"{base}/v1/batches/{created.json()['id']}").json())["status"] not in (
                "completed", "failed", "expired", "cancelled"):
            assert time.monotonic() < deadline, batch
            time.sleep(0.5)
        assert batch["status"] == "completed", batch
        assert batch["request_counts"] == {"total": 30, "completed": 30, "failed": 0}
        output = processes.get(f"{base}/v1/batches/{batch['id']}/output").text.splitlines()
        assert [json.loads(line)["custom_id"] for line in output] == [str(n) for n in range(1, 31)]
        assert {json.loads(line)["result"]["label"] for line in output} <= {"positive", "negative"}
    reset_settings()
    dispose_engines()
