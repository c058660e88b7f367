"""The user commands of `seqserve`, over HTTP through seqserve_client (so they work against
any deployment; they never import the server's code):

    seqserve jobs submit --kind K --model M TEXT... [--param k=v] [--wait | --stream] [--json]
    seqserve jobs get|cancel|watch ID, seqserve jobs list [--status --kind --model --limit --cursor]
    seqserve models list | show NAME | promote NAME VERSION [--on-evidence [--force]] | rollback NAME [VERSION]
    seqserve models rollout NAME [--shadow V --shadow-rate R --canary V=W --policy k=v | --clear] [--alias A]
    seqserve batches create FILE --kind K --model M [--format F] [--wait] [--output PATH]
    seqserve batches get|cancel ID, batches list, batches download ID [--output PATH] [--errors]
    seqserve training start --task T [--preset P] [--set k=v] | get|cancel ID | list

`--url` / `--api-key` default to SEQSERVE_URL / SEQSERVE_API_KEY. Exit codes (EXIT_CODES):
0 done, 1 the job, batch or run failed (or was cancelled), 2 bad usage or a request the
server refused (4xx), 3 server error or unreachable, 4 a wait timed out.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

EXIT_CODES = {"ok": 0, "failed": 1, "refused": 2, "unavailable": 3, "timeout": 4}
GROUPS = ("jobs", "models", "batches", "training")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="API base URL (default: SEQSERVE_URL, else http://127.0.0.1:8000)")
    parser.add_argument("--api-key", help="API key (default: SEQSERVE_API_KEY)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a wait may take (default 300)")


def _command(group: Any, name: str, func: str, help_: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_)
    _common(parser)
    parser.set_defaults(func=run, command_func=func)
    return parser


def _filters(parser: argparse.ArgumentParser, status_help: str) -> None:
    parser.add_argument("--status", help=status_help)
    parser.add_argument("--kind")
    parser.add_argument("--model")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--cursor")


def _add_jobs(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="submit and follow jobs (HTTP)").add_subparsers(dest="jobs_command",
                                                                                       required=True)
    submit = _command(jobs, "submit", "jobs_submit", "submit a job")
    submit.add_argument("inputs", nargs="+", metavar="TEXT")
    submit.add_argument("--kind", required=True)
    submit.add_argument("--model", required=True, help="name, name@alias or name:version")
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--priority", choices=("high", "normal", "low"))
    how = submit.add_mutually_exclusive_group()
    how.add_argument("--wait", action="store_true", help="wait for the job to end and print its results")
    how.add_argument("--stream", action="store_true", help="follow its events (tokens as they decode)")
    for name, func, help_ in (("get", "jobs_get", "show a job"), ("cancel", "jobs_cancel", "cancel a job"),
                              ("watch", "jobs_watch", "follow a job's events until it ends")):
        _command(jobs, name, func, help_).add_argument("id")
    _filters(_command(jobs, "list", "jobs_list", "your team's jobs, newest first"),
             "queued, running, succeeded, failed, cancelled")


def _add_models(sub: Any) -> None:
    models = sub.add_parser("models", help="the model registry (HTTP)").add_subparsers(dest="models_command",
                                                                                       required=True)
    _command(models, "list", "models_list", "registered models")
    _command(models, "show", "models_show", "one model's versions and aliases").add_argument("name")
    promote = _command(models, "promote", "models_promote",
                       "point an alias at a version; --on-evidence: only when the rollout policy's evidence holds")
    rollback = _command(models, "rollback", "models_rollback",
                        "restore the alias's state before its last change (or point it at VERSION)")
    rollout = _command(models, "rollout", "models_rollout",
                       "show an alias's rollout (shadow agreement, canary arms, policy); with options, replace it")
    for parser, version_help in ((promote, "the version (default with --on-evidence: the shadow version)"),
                                 (rollback, "point the alias at this version instead"), (rollout, None)):
        parser.add_argument("name")
        if version_help:
            parser.add_argument("version", type=int, nargs="?", help=version_help)
        parser.add_argument("--alias", default="production")
        parser.add_argument("--reason", default="")
    promote.add_argument("--on-evidence", action="store_true", help="through the policy and the workers' warm-up")
    promote.add_argument("--force", action="store_true", help="with --on-evidence: move although the policy refuses")
    rollout.add_argument("--shadow", type=int, metavar="VERSION", help="also run sampled jobs on this version")
    rollout.add_argument("--shadow-rate", type=float, default=1.0, help="share of jobs the shadow runs (default 1)")
    rollout.add_argument("--canary", action="append", default=[], metavar="VERSION=WEIGHT",
                         help="split new jobs by weight, e.g. --canary 3=90 --canary 4=10")
    rollout.add_argument("--policy", action="append", default=[], metavar="KEY=VALUE",
                         help="min_shadow_inputs, min_agreement, min_canary_jobs, max_failure_ratio_increase")
    rollout.add_argument("--clear", action="store_true", help="no shadow, no split, no policy")


def _add_batches(sub: Any) -> None:
    batches = sub.add_parser("batches", help="corpus batches (HTTP)").add_subparsers(dest="batches_command",
                                                                                     required=True)
    create = _command(batches, "create", "batches_create", "upload a corpus file and start a batch on it")
    create.add_argument("file")
    create.add_argument("--kind", required=True)
    create.add_argument("--model", required=True)
    create.add_argument("--format", choices=("jsonl", "conllu", "text"), help="default: from the extension")
    create.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("--priority", choices=("high", "normal", "low"))
    create.add_argument("--on-malformed", choices=("fail", "skip"))
    create.add_argument("--wait", action="store_true", help="show progress until the batch ends")
    create.add_argument("--output", help="wait, then write the output here")
    for name, func, help_ in (("get", "batches_get", "show a batch"), ("cancel", "batches_cancel", "cancel it")):
        _command(batches, name, func, help_).add_argument("id")
    _filters(_command(batches, "list", "batches_list", "your team's batches"), "e.g. in_progress, completed")
    download = _command(batches, "download", "batches_download", "an ended batch's output (stdout or --output)")
    download.add_argument("id")
    download.add_argument("--output")
    download.add_argument("--format", choices=("jsonl", "conllu"))
    download.add_argument("--errors", action="store_true", help="the error file instead of the output")


def _add_training(sub: Any) -> None:
    training = sub.add_parser("training", help="training runs (HTTP)").add_subparsers(dest="training_command",
                                                                                      required=True)
    start = _command(training, "start", "training_start", "queue a training run")
    start.add_argument("--task", required=True)
    start.add_argument("--preset")
    start.add_argument("--model-name")
    start.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    _command(training, "get", "training_get", "one run, with its progress inside the epoch").add_argument("id")
    _command(training, "cancel", "training_cancel", "cancel a run (a running one stops at its next batch)"
             ).add_argument("id")
    listing = _command(training, "list", "training_list", "recent runs")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int)


def add_user_commands(sub: Any) -> None:
    """Register `jobs`, `models`, `batches` and `training` on the `seqserve` parser."""
    for add in (_add_jobs, _add_models, _add_batches, _add_training):
        add(sub)


def _exit_code(exc: Exception) -> int:
    from seqserve_client import ApiError, ConnectionFailed, JobFailed, WaitTimeout

    if isinstance(exc, JobFailed):
        return EXIT_CODES["failed"]
    if isinstance(exc, WaitTimeout):
        return EXIT_CODES["timeout"]
    if isinstance(exc, ApiError) and exc.status < 500:
        return EXIT_CODES["refused"]
    if isinstance(exc, ApiError | ConnectionFailed):
        return EXIT_CODES["unavailable"]
    raise exc


def run(args: argparse.Namespace) -> int:
    """One user command: its function in `commands`, the client's errors as exit codes."""
    import json
    import logging

    from seqserve_client import ApiError, Client, SeqserveError

    from seqserve.services.usercli import commands, render

    # httpx logs every request at INFO, which would bury a progress bar and break `--json`
    # callers that read stderr; its warnings still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace, Client], int] = getattr(commands, args.command_func)
    try:
        with Client(args.url, args.api_key, timeout=max(30.0, min(args.timeout, 120.0))) as client:
            return func(args, client)
    except argparse.ArgumentTypeError as exc:
        render.err.print(f"error: {exc}")
        return EXIT_CODES["refused"]
    except SeqserveError as exc:
        if args.json and isinstance(exc, ApiError):
            error = {"code": exc.code, "message": exc.message, "field": exc.field}
            print(json.dumps({"status": exc.status, "error": error}))
        else:
            render.err.print(f"error: {exc}", markup=False)
        return _exit_code(exc)
