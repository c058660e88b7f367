"""Shared fixtures: a migrated Postgres database per session, emptied after every test; a
Redis database for the broker; a tiny trained classifier; real api/worker processes.

Nothing here mocks Postgres, Redis or Celery: the services under test talk to the real ones.
"""

from __future__ import annotations

import atexit
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from psycopg.errors import DeadlockDetected, LockNotAvailable
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from seqserve.services.worker.context import WorkerContext, reset_worker_context
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.db.base import Base, utcnow
from seqserve.shared.db.migrate import upgrade
from seqserve.shared.db.session import dispose_engines, session_scope
from tests import processes

# Fixtures kept in modules of their own are plugins of this root conftest, never imported
# into a test module: each import is a fixture definition of its own, so a session fixture
# imported twice is built twice (two trainings into one path, a checksum one side expects
# and the other overwrote). tests/test_fixture_hygiene.py keeps it so.
pytest_plugins = ("tests.model_fixtures",)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SEQSERVE_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets"))
PG_ADMIN_URL = os.environ.get("SEQSERVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_HOST_URL = "redis://127.0.0.1:6379"
# Redis databases a test run may take (the benchmark uses 12, the console demo 11).
_TEST_REDIS_DBS = (13, 14, 15, *range(1, 11))


def _claim_redis_db() -> str:
    """A Redis database of this test run's own: concurrent runs on one machine (two
    checkouts, CI beside a developer) never see each other's queues. The claim is a key in
    database 0 that expires, so a killed run frees its database within hours."""
    admin = redis.Redis.from_url(f"{REDIS_HOST_URL}/0")
    for index in _TEST_REDIS_DBS:
        key = f"seqserve:test-run:db{index}"
        if admin.set(key, os.getpid(), nx=True, ex=3 * 3600):
            atexit.register(admin.delete, key)
            return f"{REDIS_HOST_URL}/{index}"
    raise RuntimeError(f"every test Redis database {_TEST_REDIS_DBS} is claimed by another run")


REDIS_URL = os.environ.get("SEQSERVE_TEST_REDIS_URL") or _claim_redis_db()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The datasets folder beside the checkout (or SEQSERVE_DATA_DIR)."""
    return DATA_DIR


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    # Test models are tiny: extra intra-op threads only add synchronisation, and on a busy
    # 2-core machine spinning threads make a 2 s test take 20 s.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_warmup_thread_left() -> Iterator[None]:
    """A worker's warm-up thread started in the test process outlives its test and polls every
    later test's database (stop 17's CI: `no such table: alias_rollouts` in other tests' logs)."""
    yield
    import threading

    left = [t.name for t in threading.enumerate() if t.name == "seqserve-warmup" and t.is_alive()]
    assert left == [], "a test left a worker warm-up thread running in the test process"


_SESSION_DATABASE: list[str] = []  # pg_url's, once it exists


@pytest.fixture(scope="module", autouse=True)
def clean_after_module_processes() -> Iterator[None]:
    """A module's stack (api, worker, beat: a module fixture) stops after its last test's `db`
    has emptied the tables and Redis, and what it wrote in between (beat's queue canaries, as
    heartbeat rows) met the next module's first test (the 20:12 CI run of 2026-12-04:
    `test_a_failed_send_runs_its_undo_and_propagates` counted 3 heartbeats). Autouse, so it
    is set up before such a stack and torn down after it: both are emptied again then, in
    modules that started processes only."""
    started = processes.STARTED[0]
    yield
    if _SESSION_DATABASE and processes.STARTED[0] != started:
        _truncate_all(_SESSION_DATABASE[0])
        redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database built by the Alembic migrations, dropped at the end."""
    name = f"seqserve_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    seed_stack_key(url)
    _SESSION_DATABASE.append(url)
    yield url
    _SESSION_DATABASE.clear()
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seqserve")


@pytest.fixture(scope="session")
def stack_env(pg_url: str, session_tmp: Path) -> dict[str, str]:
    """The SEQSERVE_* environment every process of a test run shares."""
    return {
        "SEQSERVE_DATABASE_URL": pg_url,
        "SEQSERVE_BROKER_URL": REDIS_URL,
        "SEQSERVE_VAR_DIR": str(session_tmp / "var"),
        "SEQSERVE_ARTIFACT_DIR": str(session_tmp / "artifacts"),
        "SEQSERVE_DATA_DIR": str(DATA_DIR),
        "SEQSERVE_DEVICE": "cpu",
        "SEQSERVE_TORCH_THREADS": "1",
        # Tests move aliases and rebuild the registry between tests: resolve every time.
        "SEQSERVE_ALIAS_CACHE_SECONDS": "0",
    }


def seed_stack_key(url: str) -> None:
    """The stack's admin key (tests/processes.py), so that real processes accept the tests' calls."""
    from seqserve.shared.auth.service import PREFIX_CHARS, digest
    from seqserve.shared.db.models import ApiKey

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(ApiKey.__table__.insert().values(  # type: ignore[attr-defined]
            name="test-stack", team="admin", scopes=["admin"], prefix=processes.STACK_KEY[:PREFIX_CHARS],
            secret_sha256=digest(processes.STACK_KEY), created_at=utcnow()))
    engine.dispose()


def _truncate_all(url: str) -> None:
    """Empty every table. TRUNCATE takes its exclusive locks one table at a time, so a process
    still reading (a worker's heartbeat, a lifespan loop of an in-process app) can deadlock with
    it; Postgres then aborts one of the two, and when that is the TRUNCATE it is tried again."""
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    try:
        for attempt in range(6):
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                break
            except OperationalError as error:
                if not isinstance(error.orig, (DeadlockDetected, LockNotAvailable)) or attempt == 5:
                    raise
                time.sleep(0.2 * (attempt + 1))
    finally:
        engine.dispose()
    seed_stack_key(url)


@pytest.fixture()
def db(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point this process at the test database and broker; empty both after the test."""
    for key, value in stack_env.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    dispose_engines()
    reset_worker_context()
    redis.Redis.from_url(REDIS_URL).flushdb()
    yield stack_env["SEQSERVE_DATABASE_URL"]
    dispose_engines()
    reset_worker_context()
    _truncate_all(stack_env["SEQSERVE_DATABASE_URL"])
    redis.Redis.from_url(REDIS_URL).flushdb()
    reset_settings()


@pytest.fixture(scope="session")
def tiny_classifier(session_tmp: Path):  # type: ignore[no-untyped-def]
    """A small classifier trained once per session on a slice of SST-2."""
    from seqserve.services.trainer.classify import train_classifier

    return train_classifier(
        data_dir=DATA_DIR,
        out_path=session_tmp / "tiny" / "model.pt",
        preset="quick",
        overrides={"max_train_examples": 600, "epochs": 2, "embedding_dim": 32, "hidden_size": 32},
        progress=False,
    )


@pytest.fixture()
def registered_model(db: str, tiny_classifier):  # type: ignore[no-untyped-def]
    """The tiny classifier registered as `tiny-sst2` v1 with its production alias."""
    register_tiny(tiny_classifier)
    return "tiny-sst2"


_TINY: list = []  # the session's tiny classifier, for `register_tiny` without the fixture


def register_tiny(outcome=None) -> None:  # type: ignore[no-untyped-def]
    """Register the session's tiny classifier in the configured database."""
    if outcome is not None and not _TINY:
        _TINY.append(outcome)
    register_outcome("tiny-sst2", "classify", outcome or _TINY[0])


def register_outcome(name: str, task: str, outcome, gate: bool = True) -> str:  # type: ignore[no-untyped-def]
    """A trainer's TrainOutcome registered as the next version of `name`, through the gate
    (`gate=False`: a candidate no alias points at)."""
    from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version

    with session_scope() as session:
        version = register_version(session, NewVersion(
            model_name=name, task=task, checkpoint_uri=str(outcome.checkpoint_path),
            sha256=outcome.sha256, size_bytes=outcome.size_bytes, metrics=outcome.metrics,
            primary_metric=outcome.primary_metric, dataset_fingerprint=outcome.data_fingerprint,
            architecture=outcome.model_config, train_config=outcome.config, drift_reference=outcome.drift_reference,
        ))
        if gate:
            promote_if_better(session, version, get_settings().promotion_margin)
    return name


def built_context() -> WorkerContext:
    """A worker's context from this test's settings, as a worker process builds it, without the
    lease renewal thread: one that outlives its test reads the next test's settings (tests that
    need renewals renew by hand)."""
    from seqserve.shared.queueing import make_celery

    settings = get_settings()
    context = WorkerContext.build(make_celery(settings), settings)
    context.leases.stop()
    return context


def claim_group_of(job_id: uuid.UUID, max_inputs: int = 1000) -> list:
    """As a worker would: claim the next batch of the job's group through the real claim."""
    from seqserve.shared.jobs import repository as jobs_repo

    with session_scope() as session:
        job = jobs_repo.get(session, job_id)
        assert job is not None
        group = jobs_repo.BatchGroup(job.model_version_id, job.kind, job.batch_key)
    with session_scope(autocommit=True) as session:
        return jobs_repo.claim_batch(session, group, max_inputs, lease_seconds=60)


def finish(claimed, status, result=None, error=None) -> bool:  # type: ignore[no-untyped-def]
    """As a worker would: write one claimed job's outcome; False when the attempt moved on."""
    from seqserve.shared.jobs import repository as jobs_repo

    with session_scope(autocommit=True) as session:
        return claimed.claim.job_id in jobs_repo.finish_many(session, [(claimed.claim, status, result, error)])


def create_key(team: str = "admin", scopes: tuple[str, ...] = ("admin",), name: str | None = None,
               expires_days: int | None = None) -> str:
    """A key in the configured database; returns its secret."""
    from seqserve.shared.auth.service import create

    with session_scope() as session:
        _, secret = create(session, name or f"k-{uuid.uuid4().hex[:12]}", team, list(scopes), expires_days)
    return secret


@pytest.fixture()
def admin_headers(db: str) -> dict[str, str]:
    """An admin key of team `admin` in this test's database, as request headers."""
    return {"Authorization": f"Bearer {create_key()}"}


# Seconds on 2 cores; vectors of this size are noise, which the tests do not mind.
TINY_EMBEDDINGS = {"max_sentences": 1500, "epochs": 1, "dim": 16, "bucket": 2000, "min_count": 2, "workers": 1}


@pytest.fixture(scope="session")
def tiny_embeddings(session_tmp: Path):  # type: ignore[no-untyped-def]
    """Tiny fastText vectors trained once per session on a slice of WikiText-2 and PTB."""
    from seqserve.services.trainer.embeddings import train_embeddings

    return train_embeddings(data_dir=DATA_DIR, out_path=session_tmp / "tiny-vectors" / "model.pt",
                            preset="quick", overrides=TINY_EMBEDDINGS, progress=False)
