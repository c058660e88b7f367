"""The `seqserve` command: the contract operators and scripts rely on.

    seqserve db upgrade                 apply migrations
    seqserve api [--host H] [--port P]  serve the HTTP API
    seqserve worker                     run an inference worker
    seqserve trainer                    run training runs queued over HTTP or by beat
    seqserve beat                       run the scheduler
    seqserve train --task T --preset P  train, evaluate, register, gate
    seqserve up                         everything on one machine (the embedded default)
    seqserve data download [NAMES]      fetch datasets from their public sources
    seqserve keys create|list|revoke    API keys (create prints the secret once, last)
    seqserve jobs|models|batches|training ...   the user commands, over HTTP (services/usercli)

Each service is imported only by its own subcommand, so `seqserve api` never loads torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, get_args

from seqserve.services.usercli import add_user_commands
from seqserve.shared.config import get_settings
from seqserve.shared.tasks import task_names
from seqserve.shared.training.presets import PresetName, resolve_config

TASKS = task_names()


def _db_upgrade(_: argparse.Namespace) -> int:
    from seqserve.shared.db.migrate import upgrade

    upgrade()
    print(f"database at head: {get_settings().database_url}")
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    workers = args.workers or settings.api_workers
    if workers > 1:
        _multiprocess_metrics_dir("api")  # each process writes its own; /metrics merges them
    uvicorn.run(
        "seqserve.services.api.main:create_app", factory=True, workers=workers,
        http="seqserve.services.api.server:NoDelayHTTPProtocol", access_log=settings.api_access_log,
        host=args.host or settings.api_host, port=args.port or settings.api_port, log_level=settings.log_level.lower(),
    )
    return 0


def _multiprocess_metrics_dir(role: str) -> None:
    """Prefork children each write metric files here; must be set before prometheus_client
    is first imported in this process."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return
    folder = get_settings().var_dir / "metrics" / f"{role}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def _worker(args: argparse.Namespace) -> int:
    settings = get_settings()
    pool = args.pool or settings.worker_pool
    concurrency = args.concurrency or settings.worker_concurrency
    if pool == "solo" and concurrency > 1:
        raise SystemExit(f"the solo pool runs one job at a time; concurrency {concurrency} needs --pool prefork")
    _multiprocess_metrics_dir("worker")
    from seqserve.services.worker.app import app

    argv = [
        "worker", "--loglevel", args.loglevel or settings.log_level, "--queues", args.queues or settings.worker_queues,
        "--concurrency", str(concurrency), "--pool", pool,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    app.worker_main(argv)
    return 0


def _trainer(args: argparse.Namespace) -> int:
    _multiprocess_metrics_dir("trainer")
    from seqserve.services.trainer.app import app
    from seqserve.shared.training import TRAINING_QUEUE

    loglevel = args.loglevel or get_settings().log_level
    app.worker_main(["worker", "--loglevel", loglevel, "--queues", TRAINING_QUEUE, "--concurrency", "1",
                     "--pool", "prefork", "--without-gossip", "--without-mingle", "--hostname", "trainer@%h"])
    return 0


def _beat(args: argparse.Namespace) -> int:
    from seqserve.services.worker.app import app

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    loglevel = args.loglevel or settings.log_level
    app.start(["beat", "--loglevel", loglevel, "--schedule", str(settings.var_dir / "celerybeat-schedule")])
    return 0


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are JSON when they parse as JSON, else strings."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got '{pair}'")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def _train(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set)
    try:
        resolve_config(args.task, args.preset, overrides)
    except ValueError as exc:
        # A usage error like argparse's own (one line, exit 2), before any run row exists.
        print(f"seqserve train: error: {exc}", file=sys.stderr)
        return 2
    from seqserve.services.trainer.service import train_and_register

    report = train_and_register(
        args.task, args.preset, overrides, model_name=args.model_name, progress=not args.no_progress,
    )
    print(json.dumps({
        "run_id": str(report.run_id), "model": report.model_name, "version": report.version,
        "metrics": report.metrics, "promoted": report.promoted, "note": report.promotion_note,
        "checkpoint": str(report.checkpoint_path),
    }, indent=2))
    return 0


def _data_download(args: argparse.Namespace) -> int:
    from seqserve.services.trainer.download import DownloadError, download

    data_dir = get_settings().data_dir
    assert data_dir is not None
    mirrors = dict(item.split("=", 1) for item in args.mirror)
    try:
        paths = download(args.names, data_dir, base_urls=mirrors or None)
    except (DownloadError, ValueError) as exc:
        print(f"download failed: {exc}", file=sys.stderr)
        return 1
    print(f"{len(paths)} files verified in {data_dir}")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from seqserve.shared.auth.schemas import ApiKeyCreate
    from seqserve.shared.auth.scopes import parse_scopes
    from seqserve.shared.auth.service import ApiKeyError, create
    from seqserve.shared.db.session import session_scope

    try:
        scopes = parse_scopes(args.scopes)
        ApiKeyCreate(name=args.name, team=args.team, scopes=scopes, expires_days=args.expires)  # the API's bounds
        with session_scope() as session:
            key, secret = create(session, args.name, args.team, scopes, args.expires)
            expires = key.expires_at.isoformat() if key.expires_at else "never"
    except ValidationError as exc:
        print(f"seqserve keys create: error: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    except (ValueError, ApiKeyError) as exc:
        print(f"seqserve keys create: error: {exc}", file=sys.stderr)
        return 2
    print(f"key '{args.name}' for team '{args.team}', scopes {','.join(scopes)}, expires {expires}")
    print("the secret is shown once, on the next line:")
    print(secret)
    return 0


def _keys_list(_: argparse.Namespace) -> int:
    from seqserve.shared.auth import repository as keys_repo
    from seqserve.shared.db.session import session_scope

    def when(moment: Any) -> str:
        return moment.isoformat(timespec="seconds") if moment else "-"

    print("NAME\tTEAM\tSCOPES\tPREFIX\tCREATED\tEXPIRES\tLAST_USED\tREVOKED")
    with session_scope() as session:
        for key in keys_repo.list_all(session):
            print("\t".join([key.name, key.team, ",".join(key.scopes), key.prefix, when(key.created_at),
                             when(key.expires_at), when(key.last_used_at), when(key.revoked_at)]))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from seqserve.shared.auth.service import ApiKeyError, revoke
    from seqserve.shared.db.session import session_scope

    try:
        with session_scope() as session:
            revoke(session, args.name)
    except ApiKeyError as exc:
        print(f"seqserve keys revoke: error: {exc}", file=sys.stderr)
        return 1
    print(f"key '{args.name}' revoked (API processes stop accepting it within SEQSERVE_AUTH_CACHE_SECONDS)")
    return 0


def _ensure_admin_key() -> Path | None:
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


def _has_production(model_name: str) -> bool:
    from seqserve.shared.db.session import session_scope
    from seqserve.shared.registry.refs import parse_model_ref
    from seqserve.shared.registry.service import RegistryError, resolve

    with session_scope() as session:
        try:
            resolve(session, parse_model_ref(model_name))
        except RegistryError:
            return False
    return True


def _up(args: argparse.Namespace) -> int:
    from seqserve.shared.db.migrate import upgrade

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade()
    key_file = _ensure_admin_key()
    if not _has_production(settings.default_model):
        print(f"no '{settings.default_model}' in the registry: training the quick classifier first")
        from seqserve.services.trainer.service import train_and_register

        train_and_register("classify", "quick", model_name=settings.default_model)
    port = args.port or settings.api_port
    me = [sys.executable, "-m", "seqserve.services.cli"]
    children = [
        subprocess.Popen([*me, "worker"]),
        subprocess.Popen([*me, "beat"]),
        subprocess.Popen([*me, "api", "--host", args.host or settings.api_host, "--port", str(port),
                          *(["--workers", str(args.workers)] if args.workers else [])]),
    ]
    _print_howto(args.host or settings.api_host, port, settings.default_model, key_file)
    return _supervise(children)


def _print_howto(host: str, port: int, model: str, key_file: Path | None) -> None:
    base = f"http://{host}:{port}"
    auth = f' -H "Authorization: Bearer $(cat {key_file})"' if key_file else ""
    warning = "" if key_file else "WARNING: SEQSERVE_AUTH=off: anyone who reaches the port is an admin\n"
    print(f"""
seqserve is up: API {base} (docs {base}/docs), a worker and beat, database {get_settings().database_url}
{warning}Submit a job and poll it:
  curl -s -X POST {base}/v1/jobs{auth} -H 'Content-Type: application/json' \\
       -d '{{"kind": "classify", "model": "{model}", "inputs": ["a gorgeous, witty film", "dull and lifeless"]}}'
  curl -s{auth} {base}/v1/jobs/<id from the answer>
Ctrl-C stops everything.
""", flush=True)


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Wait until a child exits or we are told to stop; then stop them all."""
    stop = {"now": False}

    def _on_signal(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stop["now"] and all(child.poll() is None for child in children):
        time.sleep(0.5)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0 if stop["now"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqserve", description="Serve LSTM/GRU sequence models.")
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations to head").set_defaults(func=_db_upgrade)
    for name, func in (("api", _api), ("up", _up)):
        cmd = sub.add_parser(name, help="serve the HTTP API" if name == "api" else "run everything here")
        cmd.add_argument("--host")
        cmd.add_argument("--port", type=int)
        cmd.add_argument("--workers", type=int, help="API processes (default: SEQSERVE_API_WORKERS)")
        cmd.set_defaults(func=func)
    worker = sub.add_parser("worker", help="run an inference worker")
    worker.add_argument("--queues")
    worker.add_argument("--concurrency", type=int)
    worker.add_argument("--pool", choices=("prefork", "solo"), help="default: SEQSERVE_WORKER_POOL")
    worker.add_argument("--hostname")
    worker.add_argument("--loglevel", default=None, help="default: SEQSERVE_LOG_LEVEL (INFO)")
    worker.set_defaults(func=_worker)
    trainer = sub.add_parser("trainer", help="run training runs from the training queue")
    trainer.add_argument("--loglevel", default=None, help="default: SEQSERVE_LOG_LEVEL (INFO)")
    trainer.set_defaults(func=_trainer)
    beat = sub.add_parser("beat", help="run the scheduler")
    beat.add_argument("--loglevel", default=None, help="default: SEQSERVE_LOG_LEVEL (INFO)")
    beat.set_defaults(func=_beat)
    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    fetch = data.add_parser("download", help="fetch datasets from their public sources into SEQSERVE_DATA_DIR")
    fetch.add_argument("names", nargs="*", help="sst2 ud_english_ewt ptb wikitext2 multi30k_en_de tinyshakespeare "
                       "(default: all)")
    fetch.add_argument("--mirror", action="append", default=[], metavar="NAME=URL",
                       help="fetch NAME from URL (replaces scheme and host; the upstream path is kept)")
    fetch.set_defaults(func=_data_download)
    train = sub.add_parser("train", help="train, evaluate, register a version, run the gate")
    train.add_argument("--task", choices=TASKS, required=True)
    train.add_argument("--preset", choices=get_args(PresetName), default="quick")
    train.add_argument("--model-name")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a preset field, e.g. --set cell=gru --set epochs=3")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train)
    _add_keys_parser(sub)
    add_user_commands(sub)  # jobs, models, batches, training: over HTTP (services/usercli)
    return parser


def _add_keys_parser(sub: Any) -> None:
    from seqserve.shared.auth.scopes import SCOPES

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key; prints its secret once, as the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--team", required=True)
    create.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(SCOPES)}")
    create.add_argument("--expires", type=int, metavar="DAYS", help="days until it expires (default: never)")
    create.set_defaults(func=_keys_create)
    keys.add_parser("list", help="keys with team, scopes and times; never a secret").set_defaults(func=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    revoke.set_defaults(func=_keys_revoke)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("SEQSERVE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
