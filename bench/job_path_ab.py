"""In-process A/B of the job path's mechanisms, old (a git revision) against new, alternating
in one run on one machine: `python -m bench.job_path_ab --old-rev deceaf7`.

- publish: the hand-built wake-up LPUSHed onto Redis vs Celery's `send_task`;
- claim: the old Postgres-only claim statement (message's job + companions) vs the one claim
  statement, for a batch of 16 jobs and for an empty group (a wake-up that finds nothing);
- submit: one INSERT in a transaction vs in autocommit.

Needs Postgres and Redis (the test defaults). Prints CPU and wall microseconds per operation:
median of the repetitions (min in brackets). Figures: docs/benchmarks/job-path.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Callable

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BROKER = "redis://127.0.0.1:6379/12"  # the benchmark's Redis database


def _timed(work: Callable[[], None], n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        work()
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def _report(name: str, samples: list[tuple[float, float]]) -> None:
    cpu, wall = [s[0] for s in samples], [s[1] for s in samples]
    print(f"{name:36s} cpu {statistics.median(cpu):7.0f} us [{min(cpu):.0f}]   "
          f"wall {statistics.median(wall):7.0f} us [{min(wall):.0f}]", flush=True)


def _ab(cases: dict[str, Callable[[], None]], n: int, reps: int) -> None:
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    names = list(cases)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:  # alternate the order
            samples[name].append(_timed(cases[name], n))
    for name in names:
        _report(name, samples[name])


def _old_module(rev: str, path: str, name: str) -> types.ModuleType:
    source = subprocess.check_output(["git", "show", f"{rev}:{path}"], text=True)
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def bench_publish(reps: int) -> None:
    import redis

    from seqserve.shared.config import get_settings
    from seqserve.shared.queueing import RUN_BATCHES_TASK, Wakeup, make_celery, publish_wakeup

    celery, client = make_celery(get_settings()), redis.Redis.from_url(BROKER)
    wakeup = Wakeup(version_id=1, kind="classify", batch_key="k", priority="normal")
    _ab({
        "publish: hand-built LPUSH": lambda: publish_wakeup(celery, wakeup, client),
        "publish: celery send_task": lambda: celery.send_task(RUN_BATCHES_TASK, kwargs=wakeup.model_dump(),
                                                              queue="inference.normal"),
    }, 1000, reps)
    client.delete("inference.normal")


def _queue_jobs(version_id: int, count: int) -> uuid.UUID:
    from seqserve.shared.db.base import utcnow
    from seqserve.shared.db.session import session_scope
    from seqserve.shared.jobs import repository as jobs_repo

    first = None
    with session_scope() as session:
        for i in range(count):
            job_id = uuid.uuid4()
            first = first or job_id
            jobs_repo.insert_row(session, {
                "id": job_id, "kind": "classify", "model_name": "m", "model_ref": "m", "model_version_id": version_id,
                "version_number": 1, "inputs": [f"text {i}"], "params": {}, "batch_key": "k", "priority": "normal",
                "status": "queued", "attempts": 0, "created_at": utcnow()})
    assert first is not None
    return first


def _finish_running() -> None:
    """Claimed jobs end (as a worker's would), so the group holds only what is queued."""
    from sqlalchemy import text

    from seqserve.shared.db.session import session_scope

    with session_scope() as session:
        session.execute(text("UPDATE jobs SET status = 'succeeded', lease_expires_at = NULL WHERE status = 'running'"))


def bench_claim(rev: str, reps: int) -> None:
    from seqserve.shared.db.session import session_scope
    from seqserve.shared.jobs import repository as jobs_repo
    from seqserve.shared.registry.service import NewVersion, register_version

    old = _old_module(rev, "shared/jobs/repository.py", "old_repository")
    with session_scope() as session:
        version_id = register_version(session, NewVersion(
            model_name="m", task="classify", checkpoint_uri="/absent", sha256="0" * 64, size_bytes=1, metrics={},
            primary_metric="m", dataset_fingerprint="f")).id
    group, limits = jobs_repo.BatchGroup(version_id, "classify", "k"), {"classify": 256}

    def old_claim(size: int) -> Callable[[], None]:
        def run() -> None:
            lead = _queue_jobs(version_id, size) if size else uuid.uuid4()
            started = time.perf_counter()
            with session_scope(autocommit=True) as session:
                old.claim_batch(session.connection(), lead, (version_id, "classify", "k"), limits, 60,
                                single_statement=True)
            spent.append(time.perf_counter() - started)
            _finish_running()
        return run

    def new_claim(size: int) -> Callable[[], None]:
        def run() -> None:
            if size:
                _queue_jobs(version_id, size)
            started = time.perf_counter()
            with session_scope(autocommit=True) as session:
                jobs_repo.claim_batch(session, group, 256, 60)
            spent.append(time.perf_counter() - started)
            _finish_running()
        return run

    for size in (16, 0):
        results: dict[str, list[float]] = {"old": [], "new": []}
        for rep in range(reps):
            for name, make in (("old", old_claim), ("new", new_claim))[:: 1 if rep % 2 == 0 else -1]:
                spent: list[float] = []
                work = make(size)
                for _ in range(200):
                    work()
                results[name].append(statistics.median(spent) * 1e6)
        for name, values in results.items():
            print(f"claim {size:2d} jobs: {name} statement          wall {statistics.median(values):7.0f} us "
                  f"[{min(values):.0f}] (median claim, median of {reps} runs)", flush=True)


def bench_submit(reps: int) -> None:
    from seqserve.shared.db.session import session_scope
    from seqserve.shared.jobs import repository as jobs_repo

    with session_scope() as session:
        version_id = session.scalar(jobs_repo.select(jobs_repo.func.min(jobs_repo.Job.model_version_id)))
    row = {"kind": "classify", "model_name": "m", "model_ref": "m", "model_version_id": version_id,
           "version_number": 1, "inputs": ["a text"], "params": {}, "batch_key": "s", "priority": "normal",
           "status": "queued", "attempts": 0}

    def insert(autocommit: bool) -> Callable[[], None]:
        def run() -> None:
            with session_scope(autocommit=autocommit) as session:
                jobs_repo.insert_row(session, row | {"id": uuid.uuid4(), "created_at": jobs_repo.utcnow()})
        return run

    _ab({"submit INSERT: transaction": insert(False), "submit INSERT: autocommit": insert(True)}, 500, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-rev", default="deceaf7", help="the revision whose claim statement is 'old'")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    from sqlalchemy import create_engine, text

    name = f"seqserve_ab_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    os.environ |= {"SEQSERVE_DATABASE_URL": url, "SEQSERVE_BROKER_URL": BROKER}
    try:
        from seqserve.shared.db.migrate import upgrade

        upgrade(url)
        bench_publish(args.reps)
        bench_claim(args.old_rev, args.reps)
        bench_submit(args.reps)
    finally:
        from seqserve.shared.db.session import dispose_engines

        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    sys.exit(0)


if __name__ == "__main__":
    main()
