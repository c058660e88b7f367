"""The user commands of `seqserve` (services/usercli) as a script runs them, against a real
stack: tables, --json, and the documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from seqserve_client import Client

from tests import processes
from tests.conftest import register_outcome

pytestmark = pytest.mark.e2e


def seqserve(base: str, *args: str, key: str = processes.STACK_KEY) -> subprocess.CompletedProcess[str]:
    env = {"SEQSERVE_URL": base, "SEQSERVE_API_KEY": key, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "seqserve.services.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=processes.REPO_ROOT)


def _json(run: subprocess.CompletedProcess[str]) -> dict:
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def test_jobs_commands(served: str) -> None:
    table = seqserve(served, "jobs", "submit", "--kind", "classify", "--model", "tiny-sst2", "--wait",
                     "a gorgeous, witty film", "dull")
    assert table.returncode == 0, table.stderr
    assert "succeeded" in table.stdout and "a gorgeous, witty film" in table.stdout
    queued = _json(seqserve(served, "jobs", "submit", "--kind", "classify", "--model", "tiny-sst2", "--json", "x"))
    assert queued["status"] == "queued" and queued["num_inputs"] == 1
    watched = seqserve(served, "jobs", "watch", queued["id"], "--json")
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert watched.returncode == 0 and lines[-1]["event"] == "final" and lines[-1]["data"]["status"] == "succeeded"
    got = _json(seqserve(served, "jobs", "get", queued["id"], "--json"))
    assert got["result"][0]["label"] in got["result"][0]["probabilities"]
    listed = _json(seqserve(served, "jobs", "list", "--json", "--limit", "1"))
    assert [item["id"] for item in listed["items"]] == [queued["id"]] and listed["next_cursor"]
    assert queued["id"] in seqserve(served, "jobs", "list").stdout
    ended = seqserve(served, "jobs", "cancel", queued["id"], "--json")
    assert ended.returncode == 2 and json.loads(ended.stdout)["error"]["code"] == "job_finished"


def test_stream_prints_tokens_and_a_cancelled_job_exits_1(served: str) -> None:
    streamed = seqserve(served, "jobs", "submit", "--kind", "generate", "--model", "tiny-lm", "--stream",
                        "--param", "max_tokens=6", "--param", "seed=4", "the market")
    assert streamed.returncode == 0, streamed.stderr
    assert "running" in streamed.stderr and "succeeded" in streamed.stdout
    with Client(served, api_key=processes.STACK_KEY) as client:  # in-process: the cancel lands while it runs
        job = client.jobs.create("generate", "tiny-lm", ["the"] * 200, {"max_tokens": 200})
        client.jobs.cancel(job.id)
    cancelled = seqserve(served, "jobs", "get", job.id)
    assert cancelled.returncode == 1 and "cancelled" in cancelled.stdout


def test_exit_codes_for_refusals_and_outages(served: str) -> None:
    missing = seqserve(served, "jobs", "submit", "--kind", "classify", "--model", "nope", "x", "--json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["error"]["code"] == "model_not_found"
    bad_param = seqserve(served, "jobs", "submit", "--kind", "generate", "--model", "tiny-lm", "--param", "oops", "x")
    assert bad_param.returncode == 2 and "KEY=VALUE" in bad_param.stderr
    assert seqserve(served, "jobs", "submit", "--model", "tiny-lm", "x").returncode == 2  # usage: no --kind
    assert seqserve(served, "models", "list", key="sk_wrong").returncode == 2
    down = seqserve(f"http://127.0.0.1:{processes.free_port()}", "models", "list")
    assert down.returncode == 3 and "error" in down.stderr


def test_models_commands(served: str) -> None:
    listed = seqserve(served, "models", "list")
    assert listed.returncode == 0 and "tiny-sst2" in listed.stdout and "production->v1" in listed.stdout
    shown = _json(seqserve(served, "models", "show", "tiny-lm", "--json"))
    assert shown["task"] == "generate" and shown["versions"][0]["version"] == 1
    promoted = seqserve(served, "models", "promote", "tiny-lm", "1", "--alias", "staging")
    assert promoted.returncode == 0 and "tiny-lm@staging -> v1" in promoted.stdout
    rolled = _json(seqserve(served, "models", "rollback", "tiny-lm", "1", "--json"))
    assert rolled == {"model": "tiny-lm", "alias": "production", "version": 1}
    assert seqserve(served, "models", "promote", "tiny-lm", "9").returncode == 2


def test_rollout_commands(served: str, tiny_classifier: Any) -> None:
    register_outcome("tiny-sst2", "classify", tiny_classifier, gate=False)  # v2, not promoted
    shown = seqserve(served, "models", "rollout", "tiny-sst2")
    assert shown.returncode == 0 and "tiny-sst2@production" in shown.stdout and "v1" in shown.stdout
    state = _json(seqserve(served, "models", "rollout", "tiny-sst2", "--shadow", "2", "--shadow-rate", "0.5",
                           "--canary", "1=90", "--canary", "2=10", "--policy", "min_canary_jobs=5", "--json"))
    assert state["shadow"]["version"] == 2 and state["shadow"]["rate"] == 0.5
    assert {arm["version"]: arm["weight"] for arm in state["canary"]} == {1: 90, 2: 10}
    assert state["policy"]["min_canary_jobs"] == 5
    table = seqserve(served, "models", "rollout", "tiny-sst2")
    assert "v2 at rate 0.5" in table.stdout and "min_canary_jobs=5" in table.stdout and "canary version" in table.stdout
    refused = seqserve(served, "models", "promote", "tiny-sst2", "2", "--on-evidence", "--json")
    assert refused.returncode == 2 and json.loads(refused.stdout)["error"]["code"] == "promotion_refused"
    forced = seqserve(served, "models", "promote", "tiny-sst2", "2", "--on-evidence", "--force")
    assert forced.returncode == 0 and "tiny-sst2@production -> v2: promoted" in forced.stdout, forced.stderr
    assert "FAIL min_canary_jobs" in forced.stdout
    rolled = _json(seqserve(served, "models", "rollback", "tiny-sst2", "--json"))
    assert rolled == {"model": "tiny-sst2", "alias": "production", "version": 1}
    assert _json(seqserve(served, "models", "rollout", "tiny-sst2", "--json"))["shadow"]["version"] == 2
    cleared = _json(seqserve(served, "models", "rollout", "tiny-sst2", "--clear", "--json"))
    assert cleared["shadow"] is None and cleared["canary"] == []
    for usage in (("models", "promote", "tiny-sst2"), ("models", "promote", "tiny-sst2", "2", "--force"),
                  ("models", "rollout", "tiny-sst2", "--canary", "x=1"), ("models", "rollout", "tiny-sst2", "--clear",
                                                                          "--shadow", "2")):
        bad = seqserve(served, *usage)
        assert bad.returncode == 2 and "error" in bad.stderr, usage
    bad_rate = seqserve(served, "models", "rollout", "tiny-sst2", "--shadow", "2", "--shadow-rate", "2", "--json")
    assert bad_rate.returncode == 2 and "rate" in json.loads(bad_rate.stdout)["error"]["field"]


def test_training_commands(served: str) -> None:
    run = _json(seqserve(served, "training", "start", "--task", "classify", "--set", "epochs=1", "--json"))
    assert run["status"] == "queued" and run["task"] == "classify"
    assert _json(seqserve(served, "training", "get", run["id"], "--json"))["id"] == run["id"]
    listed = seqserve(served, "training", "list")
    assert listed.returncode == 0 and run["id"] in listed.stdout
    refused = seqserve(served, "training", "start", "--task", "classify", "--set", "epochs=0")
    assert refused.returncode == 2 and "overrides.epochs" in refused.stderr


def _as_the_trainer_would(run_id: str, done: int) -> None:
    """The run starts and reports progress the way services/trainer writes it (this stack runs
    no trainer, so the run would otherwise stay queued)."""
    import uuid
    from datetime import UTC, datetime

    from seqserve.shared.db.session import session_scope
    from seqserve.shared.training import repository as runs_repo
    from seqserve.shared.training.progress import TrainingProgress

    progress = TrainingProgress.measure(1, 2, done, 40, done * 32, 5.0, datetime.now(UTC))
    with session_scope() as session:
        run = runs_repo.get(session, uuid.UUID(run_id))
        assert run is not None
        runs_repo.mark_running(session, run)
        runs_repo.record_progress(session, run.id, progress.model_dump(mode="json"))


def test_training_cancel_and_progress(served: str) -> None:
    queued = _json(seqserve(served, "training", "start", "--task", "classify", "--set", "epochs=1", "--json"))
    cancelled = seqserve(served, "training", "cancel", queued["id"])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stderr
    again = seqserve(served, "training", "cancel", queued["id"], "--json")
    assert again.returncode == 2 and json.loads(again.stdout)["error"]["code"] == "training_run_finished"
    missing = seqserve(served, "training", "cancel", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 2 and "no training run" in missing.stderr

    running = _json(seqserve(served, "training", "start", "--task", "classify", "--set", "epochs=2", "--json"))
    _as_the_trainer_would(running["id"], done=10)
    shown = seqserve(served, "training", "get", running["id"])
    assert shown.returncode == 0 and "running" in shown.stdout
    assert "epoch 1/2, batch 10/40" in shown.stdout and "ETA" in shown.stdout
    got = _json(seqserve(served, "training", "get", running["id"], "--json"))
    assert got["progress"]["batches_done"] == 10 and got["progress"]["batches_total"] == 40
    stopping = _json(seqserve(served, "training", "cancel", running["id"], "--json"))
    assert stopping["status"] == "running" and stopping["cancel_requested_at"]
    assert "stops at its next batch" in seqserve(served, "training", "get", running["id"]).stdout
