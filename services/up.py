"""`seqserve up`: everything on one machine. Migrate, make the admin key, start an API, a
worker, beat and a trainer, and meanwhile train the default model if the registry lacks it
(within a time budget, with the machine's free cores). The banner saying how to use them
comes last, after the training and their start-up lines, and again whenever a model version
is registered."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from seqserve.services.cli_errors import check_training_request
from seqserve.shared.config import get_settings
from seqserve.shared.db.base import utcnow

# `up`'s own worker's node name: the banner waits for a canary consumed by it, not by another
# worker sharing the broker and the database.
WORKER_NODE = f"up{os.getpid()}"
BANNER_WAIT_SECONDS = 120.0  # for the worker's first canary; the banner comes anyway after this
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Endpoint:
    base: str
    key_file: Path | None  # None when SEQSERVE_AUTH=off


def run_up(args: argparse.Namespace) -> int:
    from seqserve.shared.db.migrate import upgrade

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade()
    key_file = ensure_admin_key()
    first_run = None if has_production(settings.default_model) else first_run_overrides()
    host, port = args.host or settings.api_host, args.port or settings.api_port
    started = utcnow()
    # The services start while the first model trains: their start-up (imports, migrations
    # checked, the worker's first canary) overlaps the training instead of following it.
    children = start_children(host, port, args.workers)
    # A SIGTERM while the model trains (before supervise's handler) stops the children too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        if first_run is not None:
            train_default_model(settings.default_model, first_run)
    except BaseException:
        stop_children(children)
        raise
    endpoint = Endpoint(f"http://{host}:{port}", key_file)
    return supervise(children, endpoint, started)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def first_run_overrides() -> dict[str, float]:
    """The first run's overrides, checked before anything starts: missing data is one line,
    exit 2, and no run row."""
    budget = get_settings().first_run_budget_minutes
    overrides = {"time_budget_minutes": budget} if budget else {}
    check_training_request("classify", "quick", overrides)
    return overrides


def train_default_model(model_name: str, overrides: dict[str, float]) -> None:
    """The services started beside it sit idle until it ends, so the auto thread rule (which
    counts the load) still gives the training the machine's free cores."""
    budget = f", epochs within {overrides['time_budget_minutes']:g} min" if overrides else ""
    print(f"no '{model_name}' in the registry: training the quick classifier first"
          f"{budget} (a progress line every 10 s; the banner follows)", flush=True)
    from seqserve.services.trainer.service import train_and_register

    train_and_register("classify", "quick", overrides, model_name=model_name, progress=False)


def start_children(host: str, port: int, api_workers: int | None) -> list[subprocess.Popen[bytes]]:
    """While serving, the worker's processes take the cores; the trainer counts as one more
    process sharing them (shared/threads.py), so a run started over HTTP leaves serving room."""
    settings = get_settings()
    me = [sys.executable, "-m", "seqserve.services.cli"]
    trainer_env = dict(os.environ)
    if not settings.torch_processes:
        trainer_env["SEQSERVE_TORCH_PROCESSES"] = str(settings.worker_concurrency + 1)
    return [
        subprocess.Popen([*me, "worker", "--hostname", f"{WORKER_NODE}@%h"]),
        subprocess.Popen([*me, "beat"]),
        subprocess.Popen([*me, "trainer"], env=trainer_env),
        subprocess.Popen([*me, "api", "--host", host, "--port", str(port),
                          *(["--workers", str(api_workers)] if api_workers else [])]),
    ]


def supervise(children: list[subprocess.Popen[bytes]], endpoint: Endpoint, started: datetime) -> int:
    """Print the banner once the worker consumes (and again per new model version); wait until
    a child exits or we are told to stop; then stop them all."""
    stop = {"now": False}

    def _on_signal(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    deadline, shown, versions = time.monotonic() + BANNER_WAIT_SECONDS, False, latest_version_id()
    while not stop["now"] and all(child.poll() is None for child in children):
        if not shown and (worker_consumed_since(started, WORKER_NODE) or time.monotonic() > deadline):
            print_banner(endpoint)
            shown = True
        newest = latest_version_id()
        if shown and newest != versions:
            print(f"\na model version was registered (model_versions.id {newest}):", flush=True)
            print_banner(endpoint)
        versions = newest
        time.sleep(POLL_SECONDS)
    stop_children(children)
    return 0 if stop["now"] else 1


def stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def worker_consumed_since(started: datetime, node: str) -> bool:
    """Our worker (node name `node`@host) ran one of beat's canaries after `up` started its
    children: it serves. Another worker on the same broker and database does not count."""
    from sqlalchemy import func, select

    from seqserve.shared.db.models import QueueHeartbeat
    from seqserve.shared.db.session import session_scope

    with session_scope() as session:
        last = session.scalar(select(func.max(QueueHeartbeat.consumed_at))
                              .where(QueueHeartbeat.worker.startswith(f"{node}@")))
    return last is not None and last >= started


def latest_version_id() -> int | None:
    from sqlalchemy import func, select

    from seqserve.shared.db.models import ModelVersion
    from seqserve.shared.db.session import session_scope

    with session_scope() as session:
        return session.scalar(select(func.max(ModelVersion.id)))


def default_models() -> list[tuple[str, str, str]]:
    """(task, its default model, what the registry has of it) for every trainable task."""
    from seqserve.shared.db.session import session_scope
    from seqserve.shared.registry.refs import parse_model_ref
    from seqserve.shared.registry.service import RegistryError, resolve
    from seqserve.shared.tasks import default_model_names

    # `up` trains and serves SEQSERVE_DEFAULT_MODEL as its classifier.
    names = default_model_names() | {"classify": get_settings().default_model}
    rows = []
    with session_scope() as session:
        for task, name in names.items():
            try:
                state = f"serving version {resolve(session, parse_model_ref(name)).version}"
            except RegistryError:
                state = f"not trained yet: seqserve train --task {task}, or POST /v1/training-runs"
            rows.append((task, name, state))
    return rows


def print_banner(endpoint: Endpoint) -> None:
    base, key_file = endpoint.base, endpoint.key_file
    settings = get_settings()
    auth = f' -H "Authorization: Bearer $(cat {key_file})"' if key_file else ""
    key_line = (f"admin key: in {key_file} (owner-only)" if key_file
                else "WARNING: SEQSERVE_AUTH=off: anyone who reaches the port is an admin")
    console = f"{base}/console#key=<the admin key>" if key_file else f"{base}/console"
    models = "\n".join(f"  {task:<10} {name:<20} {state}" for task, name, state in default_models())
    print(f"""
==== seqserve is up: API {base} (docs {base}/docs), worker, beat, trainer; database {settings.database_url}
{key_line}
console: {console}
default model per task:
{models}
Submit a job and wait up to 10 s for its result:
  curl -s -X POST {base}/v1/jobs{auth} -H 'Content-Type: application/json' -H 'Prefer: wait=10' \\
       -d '{{"kind": "classify", "model": "{settings.default_model}", "inputs": ["a gorgeous, witty film", "dull and lifeless"]}}'
  curl -s{auth} {base}/v1/jobs/<id from the answer>
Ctrl-C stops everything.
====""", flush=True)


def ensure_admin_key() -> Path | None:
    """The embedded default is secure by default: an admin key on first start, in
    var_dir/admin.key readable by its owner only. None when auth is off."""
    from seqserve.shared.auth import repository as keys_repo
    from seqserve.shared.auth.scopes import Scope
    from seqserve.shared.auth.service import create
    from seqserve.shared.db.session import session_scope

    settings = get_settings()
    path = settings.var_dir / "admin.key"
    if settings.auth == "off" or path.exists():
        return None if settings.auth == "off" else path
    with session_scope() as session:
        name = "admin" if keys_repo.by_name(session, "admin") is None else f"admin-{os.urandom(3).hex()}"
        _, secret = create(session, name, "admin", [Scope.admin.value])
    # O_EXCL and the mode at creation: the secret is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    print(f"created admin key '{name}' in {path} (owner-only)")
    return path


def has_production(model_name: str) -> bool:
    from seqserve.shared.db.session import session_scope
    from seqserve.shared.registry.refs import parse_model_ref
    from seqserve.shared.registry.service import RegistryError, resolve

    with session_scope() as session:
        try:
            resolve(session, parse_model_ref(model_name))
        except RegistryError:
            return False
    return True
