"""docker-compose.yml is valid and starts every seqserve service with a real subcommand."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from services.cli import build_parser
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
    assert {"api", "worker", "beat", "postgres", "redis", "prometheus", "migrate", "trainer"} <= set(compose["services"])
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
