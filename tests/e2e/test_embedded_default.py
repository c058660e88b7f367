"""`seqserve up` with nothing configured: SQLite, a filesystem broker, the quick classifier
trained on first start, and a job served. This is the README's run command minus the install."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from seqserve_client import Client

from seqserve.services.up import BANNER_WAIT_SECONDS
from tests import processes

pytestmark = pytest.mark.e2e


def _printed_submit_curl(log: str) -> str:
    """The POST curl `seqserve up` printed (two lines joined by a backslash)."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl -s -X POST"))
    return lines[start].rstrip("\\ ") + " " + lines[start + 1].strip()


def _banner_printed(log: Path, proc: subprocess.Popen[bytes]) -> str:
    """The log once `up` printed its banner: after the worker's first canary comes back, which
    may be after the first job did (at the latest BANNER_WAIT_SECONDS after the start)."""
    deadline = time.monotonic() + BANNER_WAIT_SECONDS + 30
    while "curl -s -X POST" not in (text := log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, text[-3000:]
        time.sleep(0.5)
    return text


def _seqserve(base: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SEQSERVE_URL": base, "SEQSERVE_API_KEY": key, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "seqserve.services.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=processes.REPO_ROOT)


def _client_and_cli_work(base: str, key: str, texts: list[str]) -> None:
    """The user CLI and the client on the embedded default: a waited job, and a streamed one,
    which has no Redis here, so its stream is status changes and the final job only."""
    waited = _seqserve(base, key, "jobs", "submit", "--kind", "classify", "--model", "sst2-classifier", "--wait",
                       "--json", *texts)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert [r["label"] for r in json.loads(waited.stdout)["result"]] == ["positive", "negative"]
    streamed = _seqserve(base, key, "jobs", "submit", "--kind", "classify", "--model", "sst2-classifier", "--stream",
                         "--json", texts[0])
    assert streamed.returncode == 0, streamed.stdout + streamed.stderr
    events = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert {e["event"] for e in events} == {"status", "final"} and events[-1]["event"] == "final"
    assert events[0]["data"]["status"] == "queued" and events[-1]["data"]["result"][0]["label"] == "positive"
    with Client(base, api_key=key) as client:
        job = client.run("classify", "sst2-classifier", texts[1])
        assert job.status == "succeeded" and job.result is not None and job.result[0].label == "negative"
        names = [event.event for event in client.jobs.stream(job.id)]
        assert names == ["status", "final"]  # already ended: its status now, then the whole job


def _registered_models(base: str, auth: dict[str, str], proc: subprocess.Popen[bytes], log: Path) -> list[dict]:
    """The models list once the first-run training has registered one."""
    deadline = time.monotonic() + 420
    while not (models := httpx.get(f"{base}/v1/models", headers=auth).json()):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(1)
    return models


def test_up_trains_serves_and_uses_no_server(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEQSERVE_")}
    var_dir = tmp_path / "var"
    # One torch thread: the process runs in its own session, which Linux autogroup scheduling
    # gives an equal share of the CPUs beside everything else running; with any other load on
    # a 2-core machine that share is one CPU, and two spinning OpenMP threads on one CPU made
    # the quick training take 270 s per epoch instead of ~30.
    env |= {"SEQSERVE_VAR_DIR": str(var_dir), "CWD": str(processes.REPO_ROOT), "SEQSERVE_TORCH_THREADS": "1"}
    port = processes.free_port()
    log = tmp_path / "up.log"
    proc = processes.start(["up", "--port", str(port)], env, log, inherit_env=False)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_http(f"{base}/healthz", proc, log, timeout=180)  # the API starts while the model trains
        key_file = var_dir / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # secure by default: owner-only
        auth = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        anonymous = httpx.get(f"{base}/v1/models")
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
        models = _registered_models(base, auth, proc, log)
        assert "no 'sst2-classifier' in the registry: training the quick classifier first, epochs within 2 min" in log.read_text()
        assert [m["name"] for m in models] == ["sst2-classifier"]
        assert models[0]["aliases"] == {"production": 1}
        assert models[0]["versions"][0]["metrics"]["accuracy"] > 0.7  # SST-2 dev, quick preset
        texts = ["a gorgeous , witty , seductive movie .", "a dull , lifeless and tedious mess ."]
        response = httpx.post(f"{base}/v1/jobs", json={"kind": "classify", "model": "sst2-classifier", "inputs": texts},
                              headers=auth)
        assert response.status_code == 202, response.text
        job = processes.wait_job(base, response.json()["id"], headers=auth)
        assert job["status"] == "succeeded", job["error"]
        assert [r["label"] for r in job["result"]] == ["positive", "negative"]
        _client_and_cli_work(base, key_file.read_text().strip(), texts)
        printed = _printed_submit_curl(_banner_printed(log, proc))
        assert f'-H "Authorization: Bearer $(cat {key_file})"' in printed
        answer = subprocess.run(["bash", "-c", printed], capture_output=True, text=True, timeout=30, check=True)
        assert json.loads(answer.stdout)["status"] in ("queued", "running", "succeeded"), answer.stdout
    finally:
        processes.stop(proc, timeout=30)
    assert (var_dir / "seqserve.db").is_file()
    assert (var_dir / "broker" / "queue").is_dir()
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_a_sigterm_while_the_first_model_trains_stops_every_service(tmp_path: Path) -> None:
    """The services start beside the first-run training; `up` told to stop during it (the
    signal to `up` alone, not its group) takes them down with it, registers nothing, and the
    run ends `cancelled`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEQSERVE_")}
    env |= {"SEQSERVE_VAR_DIR": str(tmp_path / "var"), "CWD": str(processes.REPO_ROOT), "SEQSERVE_TORCH_THREADS": "1"}
    port = processes.free_port()
    log = tmp_path / "up.log"
    proc = processes.start(["up", "--port", str(port)], env, log, inherit_env=False)
    try:
        processes.wait_http(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=180)
        deadline = time.monotonic() + 180
        while "epoch 1/3, batch" not in log.read_text():  # its first progress line: it trains
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        children = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                       text=True).stdout.split()]
        assert len(children) == 4, children  # worker, beat, trainer, api
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()[-3000:]
        for pid in children:
            assert not _alive(pid), f"child {pid} outlived up"
    finally:
        processes.stop(proc, timeout=30)
    with sqlite3.connect(tmp_path / "var" / "seqserve.db") as db:
        assert db.execute("SELECT count(*) FROM model_versions").fetchone() == (0,)
        assert db.execute("SELECT status, error FROM training_runs").fetchall() == [("cancelled", None)]


def _alive(pid: int) -> bool:
    """A child that exited and is not yet reaped is a zombie: it counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
