"""The ops console in a real headless Chromium, driven over the DevTools protocol, against a
real api and worker on Postgres and Redis: what it shows matches the API, it refreshes by
itself, and the page logs no error.

Set SEQSERVE_UPDATE_SCREENSHOT=1 to also write the screenshot to docs/console.png.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import ClientConnection, connect

from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import RunStatus
from seqserve.shared.db.session import session_scope
from seqserve.shared.registry.service import NewVersion, register_version
from seqserve.shared.training import repository as runs_repo
from tests import processes

pytestmark = pytest.mark.e2e

BROKER_URL = os.environ.get("SEQSERVE_TEST_CONSOLE_REDIS_URL", "redis://127.0.0.1:6379/11")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT_DOC = processes.REPO_ROOT / "docs" / "console.png"
HISTORY = [
    {"epoch": epoch, "train_loss": loss, "dev_loss": dev_loss, "dev_accuracy": accuracy, "lr": 0.002, "seconds": 1.5}
    for epoch, loss, dev_loss, accuracy in [
        (1, 0.69, 0.66, 0.58), (2, 0.55, 0.57, 0.70), (3, 0.43, 0.51, 0.75),
        (4, 0.34, 0.49, 0.78), (5, 0.27, 0.50, 0.79), (6, 0.22, 0.52, 0.785),
    ]
]


class DevTools:
    """The little of the Chrome DevTools Protocol this test needs, over one page's websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 15, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def pump(self, seconds: float) -> None:
        """Collect the events that arrive in the next `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self._ws.recv(timeout=left)))
            except TimeoutError:
                return

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 20) -> Any:
        """The value of `expression` once it is truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.pump(0.1)
        raise TimeoutError(f"never true within {timeout}s: {expression}; page errors: {self.errors()}")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error log entries so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {[arg.get('value') for arg in params.get('args', [])]}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                found.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
        return found


@contextmanager
def headless_chromium(profile: Path, log_path: Path) -> Iterator[DevTools]:
    port = processes.free_port()
    args = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
        "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}", "about:blank",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        page = _page_target(port, proc, log_path)
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            yield DevTools(ws)
    finally:
        processes.stop(proc, timeout=10)


def _page_target(port: int, proc: subprocess.Popen[bytes], log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=1).json() if t["type"] == "page"]
            if pages:
                return pages[0]
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"chromium's DevTools never answered:\n{log_path.read_text()[-3000:]}")


@pytest.fixture()
def stack(db: str, stack_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A real api and worker (started side by side) on a Redis database of their own: test
    runs sharing a machine share the conftest's one, and their workers would take our jobs."""
    redis.Redis.from_url(BROKER_URL).flushdb()
    env = stack_env | {"SEQSERVE_BROKER_URL": BROKER_URL}
    api_port, metrics_port = processes.free_port(), processes.free_port()
    api = processes.start(["api", "--port", str(api_port)], env, tmp_path / "api.log")
    worker = processes.start(["worker", "--concurrency", "1"], env | {"SEQSERVE_WORKER_METRICS_PORT": str(metrics_port)},
                             tmp_path / "worker.log")
    base = f"http://127.0.0.1:{api_port}"
    try:
        processes.wait_http(f"{base}/healthz", api, tmp_path / "api.log")
        processes.wait_http(f"http://127.0.0.1:{metrics_port}/metrics", worker, tmp_path / "worker.log")
        yield base
    finally:
        for proc in (worker, api):  # both shut down at once; stop() then waits for each
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        processes.stop(worker)
        processes.stop(api)
        redis.Redis.from_url(BROKER_URL).flushdb()


def _run_jobs(api: str, model: str, broken: str) -> None:
    texts = ["a gorgeous , witty film", "a dull mess", "fine", "moving and funny"]
    submitted = [processes.post(f"{api}/v1/jobs", json={"kind": "classify", "model": model, "inputs": [t]}) for t in texts]
    submitted.append(processes.post(f"{api}/v1/jobs", json={"kind": "classify", "model": broken, "inputs": ["lost"]}))
    assert all(r.status_code == 202 for r in submitted), [r.text for r in submitted]
    statuses = [processes.wait_job(api, r.json()["id"], timeout=60)["status"] for r in submitted]
    assert statuses == ["succeeded"] * 4 + ["failed"]


def _register_broken() -> str:
    """A version whose checkpoint is missing: its jobs fail with the loader's error."""
    with session_scope() as session:
        register_version(session, NewVersion(
            model_name="broken-sst2", task="classify", checkpoint_uri="/absent/model.pt", sha256="0" * 64,
            size_bytes=1, metrics={"accuracy": 0.5}, primary_metric="accuracy", dataset_fingerprint="f",
        ))
    return "broken-sst2:1"


PROBES = {"film": [["movie", 0.83], ["films", 0.79]], "good": [["bad", 0.71], ["great", 0.69]]}


def _register_vectors() -> None:
    """An embeddings version and a classifier initialised from it: the console reads only the rows."""
    with session_scope() as session:
        register_version(session, NewVersion(
            model_name="console-vectors", task="embeddings", checkpoint_uri="/absent/vectors.pt", sha256="1" * 64,
            size_bytes=1, metrics={"ws353_spearman": 0.43, "probe_neighbours": PROBES},
            primary_metric="ws353_spearman", dataset_fingerprint="f",
            architecture={"vocab_size": 31_337, "dim": 100, "bucket": 50_000},
        ))
        register_version(session, NewVersion(
            model_name="console-pretrained", task="classify", checkpoint_uri="/absent/model.pt", sha256="2" * 64,
            size_bytes=1, metrics={"accuracy": 0.7}, primary_metric="accuracy", dataset_fingerprint="f",
            train_config={"pretrained_version": "console-vectors:1"},
        ))


def _training_run(model: str) -> str:
    with session_scope() as session:
        run = runs_repo.create(session, "classify", "quick", model, {"epochs": len(HISTORY)})
        run.status, run.history = RunStatus.succeeded.value, HISTORY
        run.metrics = {"accuracy": 0.79, "macro_f1": 0.788, "loss": 0.50}
        run.started_at = run.finished_at = utcnow()
        return str(run.id)


def _queued_run(model: str) -> str:
    """A run no trainer has taken yet: no start time."""
    with session_scope() as session:
        return str(runs_repo.create(session, "classify", "quick", model, {}).id)


def _shown_statuses(devtools: DevTools) -> dict[str, int]:
    tiles = devtools.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#jobs-by-status [data-status]')]"
        ".map(t => [t.dataset.status, t.querySelector('.tile-count').textContent]))"
    )
    return {status: int(re.sub(r"\D", "", text)) for status, text in tiles.items()}


def _screenshot(devtools: DevTools) -> bytes:
    """The whole page at 1280 px wide."""
    height = devtools.evaluate("Math.ceil(document.documentElement.scrollHeight)")
    devtools.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(height), deviceScaleFactor=1, mobile=False)
    devtools.pump(0.3)
    return base64.b64decode(devtools.call("Page.captureScreenshot", format="png")["data"])


@pytest.mark.skipif(CHROMIUM is None, reason="needs a chromium binary")
def test_console_shows_live_stats_models_and_curves(
    registered_model: str, stack: str, tmp_path: Path
) -> None:
    _run_jobs(stack, registered_model, _register_broken())
    _register_vectors()
    run_id = _training_run(registered_model)
    queued_run = _queued_run(registered_model)

    with headless_chromium(tmp_path / "profile", tmp_path / "chromium.log") as devtools:
        for domain in ("Runtime", "Log", "Page"):
            devtools.call(f"{domain}.enable")
        devtools.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        devtools.call("Page.navigate", url=f"{stack}/console#key={processes.STACK_KEY}")
        devtools.wait_until(f"document.querySelector('[data-run=\"{run_id}\"] svg.chart polyline') !== null")
        devtools.wait_until("document.querySelector('#failures tr[data-job]') !== null")

        assert devtools.evaluate("document.title") == "seqserve console"
        when = "document.querySelector('[data-run=\"{}\"] .run-when').textContent"
        assert "queued since " in devtools.evaluate(when.format(queued_run))
        assert "started " in devtools.evaluate(when.format(run_id))
        stats = processes.get(f"{stack}/v1/stats").json()
        expected = stats["jobs_by_status"] | {"total": sum(stats["jobs_by_status"].values())}
        assert expected["succeeded"] == 4 and expected["failed"] == 1
        assert _shown_statuses(devtools) == expected

        production = devtools.evaluate(
            f"document.querySelector('[data-model=\"{registered_model}\"] [data-alias=\"production\"]').textContent")
        assert production == "production → v1"
        assert devtools.evaluate("document.querySelector('[data-model=\"broken-sst2\"] tr[data-version=\"1\"]') !== null")
        vectors = devtools.evaluate(
            "document.querySelector('[data-model=\"console-vectors\"] tr[data-embeddings=\"1\"]').textContent")
        assert "31,337 words" in vectors and "100 dimensions" in vectors and "character n-grams" in vectors, vectors
        probes = devtools.evaluate(
            "[...document.querySelectorAll('[data-model=\"console-vectors\"] [data-probe]')].map(li => li.textContent)")
        assert probes == ["film → movie 0.83, films 0.79", "good → bad 0.71, great 0.69"], probes
        lineage = devtools.evaluate(
            "document.querySelector('[data-model=\"console-pretrained\"] tr[data-pretrained=\"1\"]').textContent")
        assert lineage == "word embeddings initialised from console-vectors:1"
        failure = devtools.evaluate("document.querySelector('#failures tr[data-job]').textContent")
        assert "broken-sst2:1" in failure and "checkpoint not found: model.pt" in failure  # no server directory
        assert devtools.evaluate("document.querySelector('#latency tr[data-kind=\"classify\"]') !== null")
        devtools.wait_until("document.querySelector('#drift tr[data-model=\"broken-sst2\"]') !== null")
        served = devtools.evaluate(f"document.querySelector('#drift tr[data-model=\"{registered_model}\"]').textContent")
        assert "chars" in served and "no reference" not in served  # its dev reference vs what it served
        unreferenced = devtools.evaluate("document.querySelector('#drift tr[data-model=\"broken-sst2\"]').textContent")
        assert "no reference statistics" in unreferenced
        assert devtools.evaluate("document.querySelectorAll('#queue-depth [data-queue]').length") == len(stats["queue_depth"])
        curves = devtools.evaluate(
            f"[...document.querySelectorAll('[data-run=\"{run_id}\"] svg.chart polyline')]"
            ".map(p => p.getAttribute('points').trim().split(' ').length)")
        assert curves == [len(HISTORY)] * 3  # train loss, dev loss; dev accuracy

        # Live: the stamp moves on by itself, and a job that ends later shows up without a reload.
        stamp = "[document.getElementById('updated-at').textContent, document.getElementById('updated-at').dateTime]"
        first_text, first_iso = devtools.evaluate(stamp)
        assert re.fullmatch(r"\d{1,2}\D\d\d\D\d\d", first_text), first_text
        devtools.wait_until(f"document.getElementById('updated-at').textContent !== {json.dumps(first_text)}", timeout=8)
        later_text, later_iso = devtools.evaluate(stamp)
        assert later_text != first_text and later_iso > first_iso
        late = processes.post(f"{stack}/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": ["late"]})
        assert processes.wait_job(stack, late.json()["id"])["status"] == "succeeded"
        devtools.wait_until("document.querySelector('#jobs-by-status [data-status=\"succeeded\"] .tile-count')"
                            ".textContent === '5'", timeout=8)
        assert devtools.evaluate("document.getElementById('connection').textContent") == "live"

        # A corpus batch shows in its panel (its chunk job may then change the counts above).
        upload = processes.post(f"{stack}/v1/files", files={"file": ("corpus.txt", b"one\ntwo\nthree\n")})
        batch = processes.post(f"{stack}/v1/batches", json={"kind": "classify", "model": registered_model,
                                                            "input_file": upload.json()["id"]})
        assert batch.status_code == 202, batch.text
        devtools.wait_until("document.querySelector('#batches tr[data-batch]') !== null")
        shown = devtools.evaluate("document.querySelector('#batches tr[data-batch]').textContent")
        assert f"{registered_model}:1" in shown and "classify" in shown

        png = _screenshot(devtools)
        devtools.pump(0.5)
        assert devtools.errors() == []

    assert png.startswith(b"\x89PNG") and len(png) < 300_000, len(png)
    (tmp_path / "console.png").write_bytes(png)
    if os.environ.get("SEQSERVE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT_DOC.parent.mkdir(exist_ok=True)
        SCREENSHOT_DOC.write_bytes(png)
