"""An exception no handler knows still answers the JSON error shape, and uvicorn keeps the
keep-alive connection open (it closes it when an exception escapes the app). A real uvicorn
server serves the real app, with one extra route that fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy.exc import DataError

from seqserve.services.api.main import create_app
from tests.processes import free_port


@pytest.fixture()
def server(db: str) -> Iterator[str]:
    app = create_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/boom-db")
    def boom_db() -> None:
        raise DataError("SELECT 1", {}, Exception("not a connection problem"))

    port = free_port()
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(timeout=10)


def _local_port(response: httpx.Response) -> int:
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_unhandled_exceptions_answer_json_500_and_keep_the_connection(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as http:
        ports = set()
        for path in ("/boom", "/boom-db"):
            failed = http.get(path)
            assert failed.status_code == 500
            assert failed.json() == {"error": {"code": "internal_error", "message": "internal error; it was logged",
                                               "field": None}}
            ports.add(_local_port(failed))
        fine = http.get("/healthz")
        assert fine.status_code == 200
        ports.add(_local_port(fine))
    assert len(ports) == 1, f"the connection was closed after the 500: {ports}"
