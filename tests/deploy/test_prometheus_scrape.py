"""A real Prometheus scrapes a real api and worker with the shipped scrape configuration (ports
rewritten) and rules; after real jobs, every dashboard query and every alert's signal
returns data, and every rule evaluates without error.

This is what catches a metric renamed in shared/metrics.py, a label a panel filters on that
nothing sets, a job name the rules expect that the config does not produce, and PromQL that
parses but fails at evaluation (many-to-many matching and the like)."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from seqserve.shared.db.session import session_scope
from seqserve.shared.training import repository as runs_repo
from tests import processes
from tests.deploy.queries import (
    PROMETHEUS_CONFIG,
    RULES_DIR,
    Query,
    alert_queries,
    dashboard_queries,
    selectors,
    without_thresholds,
)

pytestmark = pytest.mark.e2e

SCRAPED_JOBS = {"seqserve-api", "seqserve-worker"}  # no GPU worker here


def render_config(api_port: int, worker_port: int, prometheus_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its targets pointed at this test's processes
    and 1 s intervals; job names, paths and rules as shipped."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] |= {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    ports = {"seqserve-api": api_port, "seqserve-worker": worker_port, "prometheus": prometheus_port}
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in ports:
            continue
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    assert {job["job_name"] for job in jobs} >= SCRAPED_JOBS, "the shipped config lost a seqserve job"
    return config


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> Any:
        body = processes.get(f"{self.base}{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]


@pytest.fixture()
def stack(stack_env: dict[str, str], registered_model: str, tmp_path: Path) -> Iterator[tuple[str, Prometheus]]:
    """api + worker + Prometheus; yields (API base URL, Prometheus client). Their logs are
    in tmp_path, and the test's failure message quotes them."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus (Debian's package) is needed"
    api_port, worker_port, prom_port = (processes.free_port() for _ in range(3))
    started: list[subprocess.Popen[bytes]] = []
    prometheus_log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115  (closed below)
    try:
        api = processes.start(["api", "--port", str(api_port)], stack_env, tmp_path / "api.log")
        started.append(api)
        worker_env = stack_env | {"SEQSERVE_WORKER_METRICS_PORT": str(worker_port)}
        worker = processes.start(["worker", "--concurrency", "1"], worker_env, tmp_path / "worker.log")
        started.append(worker)
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(render_config(api_port, worker_port, prom_port)))
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--web.enable-lifecycle"],
            stdout=prometheus_log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        started.append(prometheus)
        processes.wait_http(f"http://127.0.0.1:{api_port}/healthz", api, tmp_path / "api.log")
        processes.wait_http(f"http://127.0.0.1:{worker_port}/metrics", worker, tmp_path / "worker.log")
        processes.wait_http(f"http://127.0.0.1:{prom_port}/-/ready", prometheus, tmp_path / "prometheus.log")
        yield f"http://127.0.0.1:{api_port}", Prometheus(f"http://127.0.0.1:{prom_port}")
    finally:
        for proc in reversed(started):
            processes.stop(proc)
        prometheus_log.close()


def _register_broken_model(good: str) -> str:
    """A second model whose registered sha256 does not match its checkpoint: every job for it
    fails with a model load error, as in production after a tampered or truncated file."""
    from seqserve.shared.registry.refs import parse_model_ref
    from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version, resolve

    with session_scope() as session:
        version = resolve(session, parse_model_ref(good))
        broken = register_version(session, NewVersion(
            model_name="broken-sst2", task="classify", checkpoint_uri=version.checkpoint_uri, sha256="0" * 64,
            size_bytes=version.size_bytes, metrics=version.metrics, primary_metric=version.primary_metric,
            dataset_fingerprint=version.dataset_fingerprint, architecture=version.architecture,
        ))
        promote_if_better(session, broken, 0.0)
    return "broken-sst2"


def _shadow_second_version(api: str, good: str) -> None:
    """A second version of the good model in production's shadow, every job sampled: the
    rollout panels' series (shadowed inputs, agreement) get data."""
    from seqserve.shared.registry.refs import parse_model_ref
    from seqserve.shared.registry.service import NewVersion, register_version, resolve

    with session_scope() as session:
        version = resolve(session, parse_model_ref(good))
        second = register_version(session, NewVersion(
            model_name=version.model.name, task="classify", checkpoint_uri=version.checkpoint_uri,
            sha256=version.sha256, size_bytes=version.size_bytes, metrics=version.metrics,
            primary_metric=version.primary_metric, dataset_fingerprint=version.dataset_fingerprint,
            architecture=version.architecture,
        ))
        name, number = version.model.name, second.version
    response = processes.put(f"{api}/v1/models/{name}/aliases/production/rollout",
                             json={"shadow": {"version": number, "rate": 1.0}, "reason": "scrape test"})
    assert response.status_code == 200, response.text


def _record_training_runs() -> None:
    """A failed and a queued run, as the trainer and the API leave them."""
    with session_scope() as session:
        failed = runs_repo.create(session, "classify", "quick", "sst2-classifier", {})
        runs_repo.mark_failed(session, failed.id, "RuntimeError: out of memory")
        runs_repo.create(session, "tag", "quick", "ewt-upos-tagger", {})


def _log_tails(folder: Path) -> str:
    logs = sorted(folder.glob("*.log"))
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)


def _run_jobs(api: str, models: dict[str, str], logs: Path) -> None:
    """Submit a round of jobs, one rejected request, and wait for every job to finish."""
    ids = []
    for model, want in models.items():
        for text in ("a gorgeous , witty film", "dull and lifeless", "fine"):
            response = processes.post(f"{api}/v1/jobs", json={"kind": "classify", "model": model, "inputs": [text]})
            assert response.status_code == 202, response.text
            ids.append((response.json()["id"], want))
    rejected = processes.post(f"{api}/v1/jobs", json={"kind": "no-such-kind", "model": "x", "inputs": ["x"]})
    assert rejected.status_code == 422
    for job_id, want in ids:
        try:
            job = processes.wait_job(api, job_id, timeout=30)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{_log_tails(logs)}") from exc
        assert job["status"] == want, f"{job}\n{_log_tails(logs)}"


def _wait_targets_up(prometheus: Prometheus, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = prometheus.get("/api/v1/targets")["activeTargets"]
        health = {target["labels"]["job"]: target["health"] for target in targets}
        if set(health) >= SCRAPED_JOBS and all(state == "up" for state in health.values()):
            return
        time.sleep(0.25)
    raise AssertionError(f"targets never all up: {[(t['scrapeUrl'], t['health'], t['lastError']) for t in targets]}")


def _has_data(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(series["value"][1])) for series in result)


def _checks() -> list[Query]:
    """What must return data: each panel query, each alert's signal, and each selector
    (metric plus label matchers) any of them uses."""
    checks = list(dashboard_queries())
    checks += [Query(f"{q.origin} (signal)", without_thresholds(q.expr)) for q in alert_queries()]
    seen: set[str] = set()
    for query in [*dashboard_queries(), *alert_queries()]:
        for selector in selectors(query.expr):
            if selector not in seen:
                seen.add(selector)
                checks.append(Query(f"selector in {query.origin}", selector))
    return checks


def _missing(prometheus: Prometheus, checks: list[Query]) -> list[str]:
    return [f"{check.origin}: {' '.join(check.expr.split())}" for check in checks
            if not _has_data(prometheus.query(check.expr))]


def _rule_problems(prometheus: Prometheus) -> list[str]:
    rules = [rule for group in prometheus.get("/api/v1/rules")["groups"] for rule in group["rules"]]
    assert rules, "Prometheus loaded no rules"
    return [f"{rule['name']}: {rule['health']} {rule.get('lastError', '')}" for rule in rules
            if rule["health"] != "ok" or rule.get("lastError")]


def test_every_dashboard_query_and_alert_signal_returns_data(
    stack: tuple[str, Prometheus], registered_model: str, tmp_path: Path
) -> None:
    api, prometheus = stack
    broken = _register_broken_model(registered_model)
    _shadow_second_version(api, registered_model)
    _record_training_runs()
    _wait_targets_up(prometheus)
    # Two rounds, a few scrapes apart, so that rate() and histogram_quantile() over the
    # window see increases and not just the first appearance of each series.
    models = {registered_model: "succeeded", broken: "failed"}
    _run_jobs(api, models, tmp_path)
    time.sleep(2.5)
    _run_jobs(api, models, tmp_path)

    checks = _checks()
    deadline = time.monotonic() + 20
    missing = _missing(prometheus, checks)
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = _missing(prometheus, checks)
    assert not missing, "queries without data:\n" + "\n".join(missing) + "\n" + _log_tails(tmp_path)
    assert not _rule_problems(prometheus)
    # The stack is healthy and busy: the failed jobs are the broken model's, and its load
    # error is what the model alert reports.
    load_errors = prometheus.query("sum by (model) (seqserve_model_load_errors_total)")
    assert [series["metric"]["model"] for series in load_errors] == [broken]
