"""Start and stop real seqserve processes (api, worker, up) for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
# The admin key of this test run's stack: tests/conftest.py stores its digest in the test
# database (again after each test empties it), so real processes accept it.
STACK_KEY = "sk_" + secrets.token_urlsafe(32)
STACK_AUTH = {"Authorization": f"Bearer {STACK_KEY}"}


def get(url: str, **kwargs: Any) -> httpx.Response:
    """httpx.get with the stack's admin key."""
    return httpx.get(url, headers=STACK_AUTH | kwargs.pop("headers", {}), **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    """httpx.post with the stack's admin key."""
    return httpx.post(url, headers=STACK_AUTH | kwargs.pop("headers", {}), **kwargs)


def put(url: str, **kwargs: Any) -> httpx.Response:
    """httpx.put with the stack's admin key."""
    return httpx.put(url, headers=STACK_AUTH | kwargs.pop("headers", {}), **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STARTED = [0]  # processes started so far (tests/conftest.py cleans up after modules that started any)


def start(
    args: list[str], env: dict[str, str], log_path: Path, inherit_env: bool = True
) -> subprocess.Popen[bytes]:
    """`python -m seqserve.services.cli ARGS` with `env` (on top of ours when `inherit_env`), output to `log_path`."""
    STARTED[0] += 1
    full_env = {**(os.environ if inherit_env else {}), **env, "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "wb")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "seqserve.services.cli", *args], env=full_env, cwd=env.get("CWD", REPO_ROOT),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    _reap_group(proc.pid, timeout)


def _reap_group(pgid: int, timeout: float) -> None:
    """Wait until no process of the group is left: a leader can exit while its children (a
    prefork pool, a trainer) still finish a write, which would then race the next test's
    TRUNCATE. Whatever outlives the timeout is killed."""
    deadline = time.monotonic() + timeout
    while _live_in_group(pgid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.05)


def _live_in_group(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (a zombie waiting for its reaper does not)."""
    return any(int(fields[2]) == pgid and fields[0] != "Z" for _, fields in _proc_stats())  # field 5: pgrp


def wait_http(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout}s:\n{log_path.read_text()[-4000:]}")


def wait_job(base_url: str, job_id: str, timeout: float = 90, headers: dict[str, str] | None = None) -> dict:
    """Poll a job until it reaches a final status (with the stack's key unless `headers`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{base_url}/v1/jobs/{job_id}", timeout=5, headers=headers or STACK_AUTH).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")


def scrape(url: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value} (samples only)."""
    samples = {}
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def metric_total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in samples.items():
        metric, _, rest = key.partition("{")
        if metric == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


@contextlib.contextmanager
def running(env: dict[str, str], logs: Path, *services: list[str]) -> Iterator[str]:
    """An API plus the given other `seqserve` processes (e.g. ["worker"], ["trainer"]);
    yields the API's base URL and stops them all afterwards."""
    with running_processes(env, logs, *services) as (base, _):
        yield base


@contextlib.contextmanager
def running_processes(
    env: dict[str, str], logs: Path, *services: list[str]
) -> Iterator[tuple[str, dict[str, subprocess.Popen[bytes]]]]:
    """As `running`, also yielding the processes by name ("api", "worker", ...); each leads
    its own session, which holds its children (pool processes, uvicorn workers)."""
    names = [args[0] for args in services]
    if len(set(names)) != len(names) or "api" in names:
        raise ValueError(f"one process per name (their logs are named after them): {names}")
    port = free_port()
    procs = {args[0]: start(args, env, logs / f"{args[0]}.log") for args in services}
    procs["api"] = start(["api", "--port", str(port)], env, logs / "api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz", procs["api"], logs / "api.log")
        yield base, procs
    finally:
        for proc in (procs["api"], *(p for name, p in procs.items() if name != "api")):
            stop(proc)


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields of /proc/PID/stat from field 3, the state, on) for every live process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            yield int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (the prefork pool of a Celery worker)."""
    return [child for child, fields in _proc_stats() if int(fields[1]) == pid]  # field 4: parent pid


def session_cpu_seconds(sid: int) -> float:
    """User + system CPU time of every live process in session `sid`, with the reaped
    children each one accounts for."""
    ticks = sum(
        sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        for _, fields in _proc_stats()
        if int(fields[3]) == sid  # field 6: session id
    )
    return ticks / os.sysconf("SC_CLK_TCK")
