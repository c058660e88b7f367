"""The user commands' bodies: each takes the parsed arguments and a client, prints, and
returns its exit code (seqserve.services.usercli documents them)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from seqserve_client import Alias, Batch, Client, Event, Job

from seqserve.services.usercli import render

OK, FAILED = 0, 1
ENDED_BADLY = {"failed", "cancelled", "expired"}


def key_values(pairs: list[str], option: str) -> dict[str, Any]:
    """KEY=VALUE pairs; a VALUE that reads as JSON (numbers, true, lists) is taken as such."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{option} takes KEY=VALUE, got {pair!r}")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


def _ended(status: str) -> int:
    return FAILED if status in ENDED_BADLY else OK


def _show_job(args: argparse.Namespace, job: Job, inputs: list[str] | None = None) -> int:
    render.print_json(job) if args.json else render.job(job, inputs)
    return _ended(job.status) if job.done else OK


def jobs_submit(args: argparse.Namespace, client: Client) -> int:
    params = key_values(args.param, "--param")
    if args.stream:
        return _follow(args, client.stream(args.kind, args.model, args.inputs, params, args.priority), args.inputs)
    if args.wait:
        job = client.run(args.kind, args.model, args.inputs, params, timeout=args.timeout, priority=args.priority,
                         raise_on_failure=False)
    else:
        job = client.jobs.create(args.kind, args.model, args.inputs, params, priority=args.priority)
    return _show_job(args, job, args.inputs)


def _follow(args: argparse.Namespace, events: Any, inputs: list[str] | None = None) -> int:
    """Print a job's events as they come: JSON lines with --json, else status lines and, for
    a one-input job, its tokens as they decode; the whole job at the end."""
    final: Job | None = None
    event: Event
    for event in events:
        if args.json:
            sys.stdout.write(json.dumps({"event": event.event, "id": event.id, "data": event.data}) + "\n")
            sys.stdout.flush()
        elif event.event == "status":
            render.err.print(f"[dim]{event.data.get('status')}[/dim]")
        elif event.event == "token" and len(event.data["tokens"]) == 1:
            word = event.data["tokens"][0]
            render.out.print("\n" if word == "<eos>" else f"{word} ", end="")
        elif event.event == "error":
            render.err.print(f"error: {event.data['error']['message']}")
            return 3
        if event.event == "final":
            final = event.job
    if final is None:
        render.err.print("error: the stream ended before the job did")
        return 3
    if not args.json:
        render.out.print()
        render.job(final, inputs)
    return _ended(final.status)


def jobs_get(args: argparse.Namespace, client: Client) -> int:
    return _show_job(args, client.jobs.get(args.id))


def jobs_list(args: argparse.Namespace, client: Client) -> int:
    page = client.jobs.list(status=args.status, kind=args.kind, model=args.model, limit=args.limit, cursor=args.cursor)
    if args.json:
        render.print_json(page)
    else:
        render.jobs(page.items, page.next_cursor)
    return OK


def jobs_cancel(args: argparse.Namespace, client: Client) -> int:
    job = client.jobs.cancel(args.id)
    render.print_json(job) if args.json else render.job(job)
    return OK


def jobs_watch(args: argparse.Namespace, client: Client) -> int:
    return _follow(args, client.jobs.stream(args.id))


def models_list(args: argparse.Namespace, client: Client) -> int:
    items = client.models.list()
    render.print_json(items) if args.json else render.models(items)
    return OK


def models_show(args: argparse.Namespace, client: Client) -> int:
    model = client.models.get(args.name)
    render.print_json(model) if args.json else render.model(model)
    return OK


def _show_alias(args: argparse.Namespace, alias: Alias) -> int:
    render.print_json(alias) if args.json else render.out.print(f"{alias.model}@{alias.alias} -> v{alias.version}")
    return OK


def models_promote(args: argparse.Namespace, client: Client) -> int:
    reason = args.reason or "promote"
    if not args.on_evidence:
        if args.force:
            raise argparse.ArgumentTypeError("--force applies only with --on-evidence")
        if args.version is None:
            raise argparse.ArgumentTypeError("promote takes a VERSION (or --on-evidence, to promote the shadow)")
        return _show_alias(args, client.models.promote(args.name, args.version, alias=args.alias, reason=reason))
    promotion = client.models.promote_on_evidence(args.name, args.version, alias=args.alias, force=args.force,
                                                  reason=reason)
    render.print_json(promotion) if args.json else render.promotion(promotion)
    return OK


def models_rollback(args: argparse.Namespace, client: Client) -> int:
    return _show_alias(args, client.models.rollback(args.name, args.version, alias=args.alias,
                                                    reason=args.reason or "rollback"))


def _canary(pairs: list[str]) -> dict[int, int]:
    weights: dict[int, int] = {}
    for version, weight in key_values(pairs, "--canary").items():
        if not version.isdigit() or isinstance(weight, bool) or not isinstance(weight, int):
            raise argparse.ArgumentTypeError(f"--canary takes VERSION=WEIGHT (whole numbers), got {version}={weight}")
        weights[int(version)] = weight
    return weights


def models_rollout(args: argparse.Namespace, client: Client) -> int:
    changes = args.shadow is not None or args.canary or args.policy
    if args.clear and changes:
        raise argparse.ArgumentTypeError("--clear takes no --shadow, --canary or --policy")
    if args.clear or changes:
        state = client.models.set_rollout(args.name, args.alias, shadow_version=args.shadow,
                                          shadow_rate=args.shadow_rate, canary=_canary(args.canary),
                                          policy=key_values(args.policy, "--policy"), reason=args.reason)
    else:
        state = client.models.rollout(args.name, args.alias)
    render.print_json(state) if args.json else render.rollout(state)
    return OK


def training_start(args: argparse.Namespace, client: Client) -> int:
    run = client.training.start(args.task, args.preset, args.model_name, key_values(args.set, "--set"))
    render.print_json(run) if args.json else render.runs([run])
    return OK


def training_get(args: argparse.Namespace, client: Client) -> int:
    run = client.training.get(args.id)
    render.print_json(run) if args.json else render.runs([run])
    return FAILED if run.status == "failed" else OK


def training_cancel(args: argparse.Namespace, client: Client) -> int:
    run = client.training.cancel(args.id)
    render.print_json(run) if args.json else render.runs([run])
    return OK


def training_list(args: argparse.Namespace, client: Client) -> int:
    items = client.training.list(status=args.status, limit=args.limit)
    render.print_json(items) if args.json else render.runs(items)
    return OK


def batches_create(args: argparse.Namespace, client: Client) -> int:
    upload = client.batches.upload(args.file, args.format)
    batch = client.batches.create(args.kind, args.model, upload.id, key_values(args.param, "--param"),
                                  priority=args.priority, on_malformed=args.on_malformed)
    if args.wait or args.output:
        batch = _wait_with_progress(client, batch, args.timeout, quiet=args.json)
        if args.output and batch.status == "completed":
            client.batches.download(batch.id, args.output)
    render.print_json(batch) if args.json else render.batches([batch])
    return _ended(batch.status) if batch.done else OK


def _wait_with_progress(client: Client, batch: Batch, timeout: float | None, quiet: bool) -> Batch:
    """A progress bar (completed of total, rate, time left) on stderr while the batch runs."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:.1f}/s"), TimeElapsedColumn(), TimeRemainingColumn())
    started = time.monotonic()
    with Progress(*columns, console=render.err, disable=quiet) as progress:
        task = progress.add_task(batch.status, total=batch.request_counts.total or None, rate=0.0)

        def show(current: Batch) -> None:
            counts = current.request_counts
            done = counts.completed + counts.failed
            progress.update(task, description=current.status, completed=done, total=counts.total or None,
                            rate=done / max(time.monotonic() - started, 1e-6))

        return client.batches.wait(batch.id, timeout=timeout, progress=show)


def batches_get(args: argparse.Namespace, client: Client) -> int:
    batch = client.batches.get(args.id)
    render.print_json(batch) if args.json else render.batches([batch])
    return _ended(batch.status) if batch.done else OK


def batches_list(args: argparse.Namespace, client: Client) -> int:
    page = client.batches.list(status=args.status, kind=args.kind, model=args.model, limit=args.limit,
                               cursor=args.cursor)
    if args.json:
        render.print_json(page)
    else:
        render.batches(page.items, page.next_cursor)
    return OK


def batches_cancel(args: argparse.Namespace, client: Client) -> int:
    batch = client.batches.cancel(args.id)
    render.print_json(batch) if args.json else render.batches([batch])
    return OK


def batches_download(args: argparse.Namespace, client: Client) -> int:
    content = client.batches.download(args.id, args.output, args.format, errors=args.errors)
    if args.output is None:
        sys.stdout.buffer.write(content)
    else:
        render.err.print(f"wrote {len(content)} bytes to {args.output}")
    return OK
