"""A Postgres of this test's own goes away under a running `seqserve api`: every route
answers 503 JSON `database_unavailable` with Retry-After, on the same keep-alive connection,
and the API recovers by itself once Postgres is back (the machine's shared Postgres is never
touched)."""

from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import processes
from tests.conftest import seed_stack_key

pytestmark = pytest.mark.e2e

_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


class OwnPostgres:
    """initdb + pg_ctl in a temporary folder, run as the `postgres` user (initdb refuses root)."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port, self.data = root, port, root / "data"
        self.bin = Path(_BINS[-1])

    def _run(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"), "-w", "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture()
def own_postgres() -> Iterator[OwnPostgres]:
    if not _BINS or shutil.which("runuser") is None:
        pytest.skip("no /usr/lib/postgresql/*/bin or runuser here")
    root = Path(tempfile.mkdtemp(prefix="seqserve-pg-"))
    shutil.chown(root, "postgres")
    pg = OwnPostgres(root, processes.free_port())
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(pg.bin / "pg_ctl"), "-D", str(pg.data), "-m",
                        "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _local_port(response: httpx.Response) -> int:
    """The client-side port of the connection that carried `response`."""
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_outage_answers_503_json_then_recovers_on_one_connection(
        own_postgres: OwnPostgres, stack_env: dict[str, str], tmp_path: Path) -> None:
    env = stack_env | {"SEQSERVE_DATABASE_URL": own_postgres.url}
    processes.start(["db", "upgrade"], env, tmp_path / "upgrade.log").wait(timeout=120)
    seed_stack_key(own_postgres.url)
    with processes.running(env, tmp_path) as base, \
            httpx.Client(base_url=base, timeout=30, headers=processes.STACK_AUTH) as http:
        first = http.get("/v1/models")
        assert first.status_code == 200 and first.json() == []
        own_postgres.stop()
        ports = {_local_port(first)}
        for method, path in [("GET", "/v1/models"), ("GET", "/v1/jobs"), ("GET", "/v1/stats")]:
            down = http.request(method, path)
            assert down.status_code == 503, down.text
            assert down.headers["content-type"] == "application/json" and down.headers["Retry-After"]
            assert down.json()["error"]["code"] == "database_unavailable"
            ports.add(_local_port(down))
        submitted = http.post("/v1/jobs", json={"kind": "classify", "model": "m", "inputs": ["x"]})
        assert submitted.status_code == 503 and submitted.json()["error"]["code"] == "database_unavailable"
        ports.add(_local_port(submitted))
        own_postgres.start()
        back = http.get("/v1/models")
        assert back.status_code == 200 and back.json() == []
        ports.add(_local_port(back))
    assert len(ports) == 1, f"the connection was closed and reopened: {ports}"


def test_bad_inputs_keep_the_connection_alive(stack_env: dict[str, str], registered_model: str, tmp_path: Path) -> None:
    raw = {"Content-Type": "application/json"}
    bad = [
        ("POST", "/v1/jobs", b'{"kind":"classify","model":"tiny-sst2","inputs":["good\\u0000film"]}', raw),
        ("POST", "/v1/jobs", b'{"kind":"classify","model":"tiny-\\ud800","inputs":["\\ud800"]}', raw),
        ("POST", "/v1/jobs", b'{"kind":"classify","model":"tiny-sst2","inputs":["x"]}', raw | {"Prefer": "wait=nan"}),
        ("GET", "/v1/models/%00", None, {}),
        ("GET", "/v1/jobs?model=%00", None, {}),
        ("PUT", "/v1/models/tiny-sst2/aliases/production", b'{"version": 2147483648}', raw),
    ]
    with processes.running(stack_env, tmp_path) as base, \
            httpx.Client(base_url=base, timeout=30, headers=processes.STACK_AUTH) as http:
        ports = set()
        for method, path, content, headers in bad:
            response = http.request(method, path, content=content, headers=headers)
            assert 400 <= response.status_code < 500, (path, response.text)
            assert response.json()["error"]["field"], response.text
            ports.add(_local_port(response))
        good = http.post("/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": ["fine"]})
        assert good.status_code == 202, good.text
        ports.add(_local_port(good))
    assert len(ports) == 1, f"the connection was closed and reopened: {ports}"
    assert "Traceback" not in (tmp_path / "api.log").read_text()
