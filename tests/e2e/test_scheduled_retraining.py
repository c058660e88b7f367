"""Beat itself starts scheduled retraining runs on a real stack (api, worker, trainer, beat):
the first registers and the gate decides, one with no new data is skipped with its reason,
and after feedback on a job the next run trains on different data (another fingerprint);
the audit trail shows each step."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests import processes

pytestmark = pytest.mark.e2e

TINY = {"max_train_examples": 300, "epochs": 1, "embedding_dim": 16, "hidden_size": 16, "feedback_repeat": 5}
MODEL = "beat-sst2"


def _until(what: str, predicate, timeout: float = 240):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(what)


def _runs(base: str, status: str) -> list[dict]:
    runs = processes.get(f"{base}/v1/training-runs", params={"status": status, "limit": 200}).json()
    return [run for run in runs if run["model_name"] == MODEL]


def _audit(base: str, action: str) -> list[dict]:
    return processes.get(f"{base}/v1/audit", params={"action": action, "limit": 200}).json()["items"]


def test_beat_starts_runs_that_register_skip_and_learn_from_feedback(db: str, stack_env: dict[str, str],
                                                                      tmp_path: Path) -> None:
    schedule = [{"task": "classify", "preset": "quick", "model_name": MODEL, "overrides": TINY, "every_seconds": 3}]
    env = stack_env | {
        "SEQSERVE_VAR_DIR": str(tmp_path / "var"), "SEQSERVE_RETRAIN_SCHEDULE": json.dumps(schedule),
        "SEQSERVE_WORKER_METRICS_PORT": "0", "SEQSERVE_TRAINER_METRICS_PORT": "0",
    }
    with processes.running(env, tmp_path, ["worker", "--concurrency", "1"], ["trainer"], ["beat"]) as base:
        first = _until("a first run registered", lambda: _runs(base, "succeeded"))[-1]
        assert first["model_version"] == 1
        skipped = _until("a run skipped", lambda: _runs(base, "skipped"))[-1]
        assert "no new data" in skipped["config"]["skipped"] and skipped["model_version"] is None
        started = [e for e in _audit(base, "training.started") if e["target"] == first["id"]]
        assert started[0]["actor"] == "beat" and started[0]["detail"]["scheduled"] is True
        (finished,) = [e for e in _audit(base, "training.finished") if e["target"] == first["id"]]
        assert finished["detail"]["promoted"] is True and "first version" in finished["detail"]["reason"]
        moved = _audit(base, "alias.moved")
        assert moved[-1]["actor"] == "gate" and moved[-1]["target"] == f"{MODEL}@production"
        assert any(e["target"] == skipped["id"] and "no new data" in e["detail"]["reason"]
                   for e in _audit(base, "training.skipped"))

        texts = ["an utterly gorgeous and witty film", "dull , lifeless and far too long"]
        job = processes.wait_job(base, processes.post(f"{base}/v1/jobs", json={
            "kind": "classify", "model": MODEL, "inputs": texts}).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        items = [{"index": 0, "label": "positive"}, {"index": 1, "label": "negative"}]
        posted = processes.post(f"{base}/v1/jobs/{job['id']}/feedback", json={"items": items})
        assert posted.status_code == 201, posted.text

        second = _until("a run on the feedback", lambda: [r for r in _runs(base, "succeeded") if r["model_version"] == 2])
        assert second[0]["config"]["overrides"]["feedback_file"].endswith(".tsv")
        versions = {v["version"]: v for v in processes.get(f"{base}/v1/models/{MODEL}").json()["versions"]}
        assert versions[2]["dataset_fingerprint"] != versions[1]["dataset_fingerprint"]
        (gated,) = [e for e in _audit(base, "training.finished") if e["target"] == second[0]["id"]]
        assert gated["detail"]["dataset_fingerprint"] == versions[2]["dataset_fingerprint"]
        assert gated["detail"]["reason"].startswith(("promoted", "not promoted"))
        # With that feedback folded in already, the next runs are skipped again.
        _until("a skip after the feedback run", lambda: any(
            r["created_at"] > second[0]["finished_at"] for r in _runs(base, "skipped")))
