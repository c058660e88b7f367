"""The `seqserve` command: the contract operators and scripts rely on.

    seqserve db upgrade                 apply migrations
    seqserve api [--host H] [--port P]  serve the HTTP API
    seqserve worker                     run an inference worker
    seqserve trainer                    run training runs queued over HTTP or by beat
    seqserve beat                       run the scheduler
    seqserve train --task T --preset P  train, evaluate, register, gate
    seqserve up                         everything on one machine (the embedded default)
    seqserve data download [NAMES]      fetch datasets from their public sources
    seqserve keys create|list|limits|revoke  API keys (create prints the secret once, last)
    seqserve jobs|models|batches|training ...   the user commands, over HTTP (services/usercli)

Each service is imported only by its own subcommand, so `seqserve api` never loads torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from typing import Any, get_args

from seqserve.services.cli_errors import UsageError, check_training_request, require_schema
from seqserve.services.usercli import add_user_commands
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.tasks import task_names
from seqserve.shared.training.presets import PresetName

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
    require_schema()
    _multiprocess_metrics_dir("worker")
    _share_cores_between(concurrency)
    if settings.worker_nice:  # raising niceness needs no privilege; the pool's children inherit it
        os.nice(settings.worker_nice)
    if args.queues:  # the settings say what this worker consumes (batch yields and steps ask them)
        os.environ["SEQSERVE_WORKER_QUEUES"] = args.queues
        reset_settings()
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


def _share_cores_between(processes: int) -> None:
    """The auto thread rule (shared/threads.py) divides the cores between the pool's children,
    unless a supervisor (`seqserve up`) already said how many processes share them."""
    if not get_settings().torch_processes:
        os.environ["SEQSERVE_TORCH_PROCESSES"] = str(processes)
        reset_settings()


def _trainer(args: argparse.Namespace) -> int:
    require_schema()
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
            print(f"seqserve train: error: --set expects key=value, got '{pair}'", file=sys.stderr)
            raise SystemExit(2)
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def _train(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set)
    check_training_request(args.task, args.preset, overrides)  # before any run row exists
    require_schema()
    from seqserve.services.trainer.service import train_and_register

    report = train_and_register(
        args.task, args.preset, overrides, model_name=args.model_name, progress=not args.no_progress,
    )
    if report is None:
        print("seqserve train: the run was cancelled (POST /v1/training-runs/{id}/cancel); nothing registered",
              file=sys.stderr)
        return 1
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
    require_schema()
    from pydantic import ValidationError

    from seqserve.services.cli_limits import check_limit_arguments
    from seqserve.shared.auth.schemas import ApiKeyCreate
    from seqserve.shared.auth.scopes import parse_scopes
    from seqserve.shared.auth.service import ApiKeyError, create
    from seqserve.shared.db.session import session_scope

    try:
        scopes = parse_scopes(args.scopes)
        check_limit_arguments(args)  # a clear line for a bad --rate-limit or --max-priority
        body = ApiKeyCreate(name=args.name, team=args.team, scopes=scopes, expires_days=args.expires,  # the API's bounds
                            rate_limit=args.rate_limit, inputs_per_minute=args.inputs_per_minute,
                            max_priority=args.max_priority)
        with session_scope() as session:
            key, secret = create(session, args.name, args.team, scopes, args.expires, limits=body.limits())
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
    require_schema()
    from seqserve.services.cli_limits import LIMITS_HEADER, limits_columns
    from seqserve.shared.auth import repository as keys_repo
    from seqserve.shared.db.session import session_scope

    def when(moment: Any) -> str:
        return moment.isoformat(timespec="seconds") if moment else "-"

    print("NAME\tTEAM\tSCOPES\tPREFIX\tCREATED\tEXPIRES\tLAST_USED\tREVOKED\t" + LIMITS_HEADER)
    with session_scope() as session:
        for key in keys_repo.list_all(session):
            print("\t".join([key.name, key.team, ",".join(key.scopes), key.prefix, when(key.created_at),
                             when(key.expires_at), when(key.last_used_at), when(key.revoked_at), *limits_columns(key)]))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    require_schema()
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


def _keys_limits(args: argparse.Namespace) -> int:
    require_schema()
    from pydantic import ValidationError

    from seqserve.services.cli_limits import LIMITS_HEADER, limit_changes, limits_columns
    from seqserve.shared.auth.schemas import ApiKeyLimitsUpdate
    from seqserve.shared.auth.service import ApiKeyError, update_limits
    from seqserve.shared.db.session import session_scope

    try:
        body = ApiKeyLimitsUpdate(**limit_changes(args))  # the API's bounds
        with session_scope() as session:
            columns = limits_columns(update_limits(session, args.name, body.changes()))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = f"--{str(error['loc'][0]).replace('_', '-')}: " if error["loc"] else ""
        print(f"seqserve keys limits: error: {where}{error['msg']}", file=sys.stderr)
        return 2
    except (ValueError, ApiKeyError) as exc:
        print(f"seqserve keys limits: error: {exc}", file=sys.stderr)
        return 2
    print(LIMITS_HEADER)
    print("\t".join(columns))
    print("(API processes apply them within SEQSERVE_AUTH_CACHE_SECONDS)")
    return 0


def _up(args: argparse.Namespace) -> int:
    from seqserve.services.up import run_up

    return run_up(args)


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
    from seqserve.services.cli_limits import add_limit_arguments
    from seqserve.shared.auth.scopes import SCOPES

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key; prints its secret once, as the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--team", required=True)
    create.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(SCOPES)}")
    create.add_argument("--expires", type=int, metavar="DAYS", help="days until it expires (default: never)")
    add_limit_arguments(create)
    create.set_defaults(func=_keys_create)
    keys.add_parser("list", help="keys with team, scopes and times; never a secret").set_defaults(func=_keys_list)
    limits = keys.add_parser("limits", help="change a key's limits; 'default' returns one to the settings' default")
    limits.add_argument("name")
    add_limit_arguments(limits, allow_default=True)
    limits.set_defaults(func=_keys_limits)
    revoke = keys.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    revoke.set_defaults(func=_keys_revoke)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("SEQSERVE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"seqserve {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
