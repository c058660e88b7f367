"""docker-compose.yml is valid and starts every seqserve service with a real subcommand."""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest
import yaml

from seqserve.services.cli import build_parser
from seqserve.shared.config import Settings
from tests.processes import REPO_ROOT


@pytest.fixture(scope="module")
def compose() -> dict:
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose (Debian's 1.29) is needed; .ci/run installs it"
    out = subprocess.run(
        [docker_compose, "--profile", "train", "config"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_has_the_whole_stack(compose: dict) -> None:
    stack = {"api", "worker", "beat", "postgres", "redis", "prometheus", "migrate", "trainer"}
    assert stack <= set(compose["services"])
    for name in ("api", "worker", "beat", "trainer"):
        assert "checkpoints" in " ".join(str(v) for v in compose["services"][name]["volumes"])
    assert compose["services"]["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_each_seqserve_service_runs_a_cli_subcommand(compose: dict) -> None:
    parser = build_parser()
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:1] != ["seqserve"]:
            continue
        args = parser.parse_args(command[1:])  # exits (fails the test) on an unknown subcommand
        assert callable(args.func), name
        assert service["environment"]["SEQSERVE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert service["environment"]["SEQSERVE_BROKER_URL"].startswith("redis://")


@functools.cache
def _all_profiles() -> dict:
    out = subprocess.run(
        [shutil.which("docker-compose") or "docker-compose", "--profile", "gpu", "--profile", "train", "config"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )
    return yaml.safe_load(out.stdout)


def _service_config(name: str) -> dict:
    return _all_profiles()["services"][name]


def test_long_running_services_wait_for_the_schema_and_the_broker(compose: dict) -> None:
    for name in ("api", "worker", "interactive-worker", "maintenance-worker", "beat", "trainer"):
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert compose["services"]["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("postgres", "redis", "api", "worker", "trainer", "prometheus", "grafana"):
        assert compose["services"][name]["healthcheck"]["test"], name


def test_health_checks_ask_whether_jobs_are_accepted_and_consumed(compose: dict) -> None:
    assert "/readyz" in " ".join(compose["services"]["api"]["healthcheck"]["test"])
    workers = {name: service for name, service in _all_profiles()["services"].items()
               if service.get("command", [None, None])[:2] == ["seqserve", "worker"]}
    assert {"worker", "interactive-worker", "maintenance-worker", "gpu-worker"} <= workers.keys()
    for name, service in workers.items():
        assert "9101/livez" in " ".join(service["healthcheck"]["test"]), name


def test_the_default_stack_consumes_every_queue_of_a_lone_worker(compose: dict) -> None:
    """worker and maintenance-worker split what one worker consumes by default between them
    (maintenance on its own process: docs/benchmarks/batches.md), and no queue is left out."""
    consumed = {name: compose["services"][name]["environment"]["SEQSERVE_WORKER_QUEUES"].split(",")
                for name in ("worker", "maintenance-worker")}
    assert consumed["maintenance-worker"] == ["maintenance"]
    assert "maintenance" not in consumed["worker"]
    assert sorted(consumed["worker"] + consumed["maintenance-worker"]) == sorted(
        Settings.model_fields["worker_queues"].default.split(","))


def test_interactive_jobs_have_a_worker_that_takes_no_corpus_work(compose: dict) -> None:
    """interactive-worker consumes the high and normal queues only, so a single job never waits
    behind a corpus batch's low-priority pass; `worker` consumes them as well, and the two are
    the host's two inference processes (docs/benchmarks/batches.md, 2026-12-03 b)."""
    services = compose["services"]
    lane = services["interactive-worker"]
    assert lane["environment"]["SEQSERVE_WORKER_QUEUES"].split(",") == ["inference.high", "inference.normal"]
    assert {"inference.high", "inference.normal"} <= set(services["worker"]["environment"]["SEQSERVE_WORKER_QUEUES"]
                                                         .split(","))
    assert lane["command"][lane["command"].index("--concurrency") + 1] == "1"
    assert services["worker"]["environment"]["SEQSERVE_WORKER_CONCURRENCY"] == "1"
    assert "checkpoints" in " ".join(str(v) for v in lane["volumes"])
    # The corpus's processes give way to the interactive path on the shared host.
    assert services["worker"]["environment"]["SEQSERVE_WORKER_NICE"] == "10"
    assert services["maintenance-worker"]["environment"]["SEQSERVE_WORKER_NICE"] == "10"
    assert "SEQSERVE_WORKER_NICE" not in lane["environment"] and "SEQSERVE_WORKER_NICE" not in services["api"]["environment"]


def test_trainer_consumes_the_training_queue(compose: dict) -> None:
    assert compose["services"]["trainer"]["command"] == ["seqserve", "trainer"]
    assert "profiles" not in compose["services"]["trainer"]


def test_state_lives_in_volumes(compose: dict) -> None:
    assert set(compose["volumes"]) >= {"pgdata", "checkpoints"}
    assert "pgdata:/var/lib/postgresql/data" in " ".join(compose["services"]["postgres"]["volumes"])
    for name in ("worker", "trainer"):
        env = compose["services"][name]["environment"]
        assert f"checkpoints:{env['SEQSERVE_ARTIFACT_DIR']}" in " ".join(compose["services"][name]["volumes"])


def test_gpu_worker_is_the_same_image_with_cuda_torch_under_the_gpu_profile() -> None:
    gpu = _service_config("gpu-worker")
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["args"]["TORCH_INDEX_URL"].startswith("https://download.pytorch.org/whl/cu")
    assert gpu["image"] != _service_config("worker")["image"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["environment"]["SEQSERVE_DEVICE"] == "cuda"
    assert build_parser().parse_args(gpu["command"][1:]).command == "worker"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX_URL=" in dockerfile and '--index-url "${TORCH_INDEX_URL}"' in dockerfile


def test_prometheus_scrapes_the_ports_the_services_listen_on(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = " ".join(prometheus["volumes"])
    assert f"{REPO_ROOT}/deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in mounts
    assert f"{REPO_ROOT}/deploy/prometheus/rules:/etc/prometheus/rules" in mounts
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_command = compose["services"]["api"]["command"]
    api_port = api_command[api_command.index("--port") + 1]
    assert jobs["seqserve-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    scraped = (("seqserve-worker", ["worker", "interactive-worker", "maintenance-worker"]),
               ("seqserve-gpu-worker", ["gpu-worker"]))
    for job, services in scraped:
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["names"] == services
        for service in services:
            assert str(sd["port"]) == _service_config(service)["environment"]["SEQSERVE_WORKER_METRICS_PORT"]


def test_grafana_is_provisioned_from_the_repository(compose: dict) -> None:
    mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert f"{REPO_ROOT}/deploy/grafana/provisioning:/etc/grafana/provisioning" in mounts
    provider = yaml.safe_load((REPO_ROOT / "deploy/grafana/provisioning/dashboards/seqserve.yml").read_text())
    assert f"{REPO_ROOT}/deploy/grafana/dashboards:{provider['providers'][0]['options']['path']}" in mounts


def test_no_compose_worker_writes_behind(compose: dict) -> None:
    """On compose's one host the interactive worker and the API share the corpus worker's CPUs:
    results written behind the next pass raised the interactive probe's p99 there, so every
    service keeps the default, off (docs/benchmarks/batches.md, 2026-12-04)."""
    for name, service in compose["services"].items():
        assert service.get("environment", {}).get("SEQSERVE_WORKER_WRITE_BEHIND", "false") == "false", name
