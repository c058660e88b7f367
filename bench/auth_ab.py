"""In-process A/B of what auth costs `POST /v1/jobs`: the same app and database with
SEQSERVE_AUTH=on (a cached key: the steady state) and off, alternating rounds in one run:
`python -m bench.auth_ab`. Needs Postgres and Redis (the test defaults). Prints CPU and wall
microseconds per request: median of the rounds (min in brackets)."""

from __future__ import annotations

import argparse
import os
import uuid

from bench.job_path_ab import BROKER, PG_ADMIN, _report, _timed


def _database() -> str:
    from sqlalchemy import create_engine, text

    name = f"seqserve_auth_ab_{uuid.uuid4().hex[:8]}"
    with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _register() -> None:
    from seqserve.shared.db.session import session_scope
    from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version

    with session_scope() as session:
        version = register_version(session, NewVersion(
            model_name="ab", task="classify", checkpoint_uri="/nonexistent", sha256="0" * 64, size_bytes=1,
            metrics={"accuracy": 0.5}, primary_metric="accuracy", dataset_fingerprint="0" * 64))
        promote_if_better(session, version, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    os.environ |= {"SEQSERVE_DATABASE_URL": _database(), "SEQSERVE_BROKER_URL": BROKER,
                   "SEQSERVE_MAX_QUEUE_DEPTH": "100000000"}
    from fastapi.testclient import TestClient

    from seqserve.services.api.main import create_app
    from seqserve.shared.auth.service import create
    from seqserve.shared.config import reset_settings
    from seqserve.shared.db.migrate import upgrade
    from seqserve.shared.db.session import session_scope

    upgrade()
    _register()
    with session_scope() as session:
        secret = create(session, "ab", "ab", ["jobs:write"])[1]
    body = {"kind": "classify", "model": "ab", "inputs": ["a fine film"]}
    clients = {}
    for mode in ("on", "off"):
        os.environ["SEQSERVE_AUTH"] = mode
        reset_settings()
        clients[mode] = TestClient(create_app(), headers={"Authorization": f"Bearer {secret}"}).__enter__()
    samples: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    for _ in range(args.rounds):
        for mode, client in clients.items():
            os.environ["SEQSERVE_AUTH"] = mode
            reset_settings()
            samples[mode].append(_timed(lambda c=client: c.post("/v1/jobs", json=body).raise_for_status(),
                                        args.requests))
    for mode in ("off", "on"):
        _report(f"POST /v1/jobs auth={mode}", samples[mode])
    for client in clients.values():
        client.__exit__(None, None, None)
    _drop(os.environ["SEQSERVE_DATABASE_URL"])


def _drop(url: str) -> None:
    from sqlalchemy import create_engine, text

    from seqserve.shared.db.session import dispose_engines

    dispose_engines()
    with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
