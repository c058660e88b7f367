"""How the user CLI shows things: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from seqserve_client import AliasState, Batch, Job, Model, Promotion, TrainingRun

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def _plain(value: Any) -> Any:
    """JSON-ready: a dataclass that kept the server's JSON (`raw`) is that JSON."""
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        if getattr(value, "raw", None):
            return value.raw  # type: ignore[attr-defined]
        return _plain({f.name: getattr(value, f.name) for f in fields(value) if f.name != "raw"})
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_plain(value), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def summary(kind: str, result: Any) -> str:
    """One line per input's result."""
    if result is None:
        return "-"
    data = _plain(result)
    if kind == "classify":
        return f"{data['label']} ({data['probabilities'].get(data['label'], 0):.3f})"
    if kind == "tag":
        return " ".join(f"{t}/{g}" for t, g in zip(data["tokens"], data["tags"], strict=False))
    if kind == "generate":
        return str(data["continuation"]).replace("\n", " / ")
    if kind == "score":
        return f"logprob {data['logprob']:.3f}, perplexity {data['perplexity']:.1f}"
    if kind == "translate":
        return str(data["translation"])
    return json.dumps({k: v for k, v in data.items() if v not in (None, {}, [])}, ensure_ascii=False)[:200]


def job(job_: Job, inputs: list[str] | None = None) -> None:
    table = Table(title=f"job {job_.id}", show_header=False)
    table.add_row("status", job_.status)
    table.add_row("kind / model", f"{job_.kind} / {job_.model_name} v{job_.model_version}")
    table.add_row("inputs", str(job_.num_inputs))
    table.add_row("created", _when(job_.created_at))
    if job_.timings.get("total_seconds") is not None:
        table.add_row("took", f"{job_.timings['total_seconds']:.3f}s")
    if job_.error:
        table.add_row("error", job_.error)
    out.print(table)
    if job_.result is not None:
        results = Table("#", *(["input"] if inputs else []), "result")
        for index, result in enumerate(job_.result):
            results.add_row(str(index), *([inputs[index]] if inputs else []), summary(job_.kind, result))
        out.print(results)


def jobs(items: list[Job], next_cursor: str | None) -> None:
    table = Table("id", "status", "kind", "model", "inputs", "created")
    for item in items:
        table.add_row(item.id, item.status, item.kind, f"{item.model_name} v{item.model_version}",
                      str(item.num_inputs), _when(item.created_at))
    out.print(table)
    if next_cursor:
        out.print(f"next page: --cursor {next_cursor}")


def models(items: list[Model]) -> None:
    table = Table("name", "task", "kinds", "versions", "aliases")
    for item in items:
        aliases = ", ".join(f"{a}->v{v}" for a, v in sorted(item.aliases.items()))
        table.add_row(item.name, item.task, ", ".join(item.kinds), str(len(item.versions)), aliases)
    out.print(table)


def model(item: Model) -> None:
    models([item])
    aliases = {version: alias for alias, version in item.aliases.items()}
    table = Table("version", "alias", "primary metric", "sha256", "created")
    for version in item.versions:
        metric = version.metrics.get(version.primary_metric)
        shown = f"{version.primary_metric}={metric:.4f}" if isinstance(metric, int | float) else version.primary_metric
        table.add_row(str(version.version), aliases.get(version.version, ""), shown, version.sha256[:12],
                      _when(version.created_at))
    out.print(table)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def rollout(state: AliasState) -> None:
    table = Table(title=f"{state.model}@{state.alias}", show_header=False)
    pending = f" (v{state.pending_version} warming)" if state.pending_version else ""
    table.add_row("version", f"v{state.version}{pending}")
    shadow = state.shadow
    table.add_row("shadow", "-" if shadow is None else
                  f"v{shadow['version']} at rate {shadow['rate']}: {shadow['jobs']} jobs ({shadow['failed']} failed), "
                  f"{shadow['inputs']} inputs, agreement {_share(shadow['agreement'])}")
    policy = ", ".join(f"{k}={v}" for k, v in state.policy.items() if v not in (None, 0, 0.0)) or "none"
    table.add_row("policy", policy)
    table.add_row("warm", ", ".join(f"v{v}: {len(procs)}" for v, procs in sorted(state.warm.items())) or "-")
    table.add_row("rollback restores", "-" if not state.previous else f"v{state.previous.get('version')}")
    out.print(table)
    if state.canary:
        arms = Table("canary version", "weight", "finished", "failed", "failure ratio", "mean s")
        for arm in state.canary:
            arms.add_row(f"v{arm['version']}", str(arm["weight"]), str(arm["finished"]), str(arm["failed"]),
                         _share(arm["failure_ratio"]), _share(arm["mean_seconds"]))
        out.print(arms)


def promotion(result: Promotion) -> None:
    verdict = "promoted" if result.promoted else "not promoted"
    out.print(f"{result.state.model}@{result.state.alias} -> v{result.state.version}: {verdict} ({result.reason})")
    for check in result.checks:
        out.print(f"  {'pass' if check['passed'] else 'FAIL'} {check['name']}: {check.get('detail', '')}")
    warm = "timed out, moved anyway" if result.warm_timed_out else "done"
    out.print(f"  warm-up {warm}: {result.warm_processes} of {result.expected_workers} workers")


def runs(items: list[TrainingRun]) -> None:
    table = Table("id", "status", "task", "preset", "model", "version", "created")
    for item in items:
        table.add_row(item.id, item.status, item.task, item.preset, item.model_name,
                      str(item.model_version or "-"), _when(item.created_at))
    out.print(table)
    for item in items:
        if item.error:
            out.print(f"{item.id}: {item.error}")
        if item.progress and item.status == "running":
            out.print(f"{item.id}: {progress_line(item.progress)}")
        if item.cancel_requested_at and item.status == "running":
            out.print(f"{item.id}: cancel requested {_when(item.cancel_requested_at)}, stops at its next batch")


def progress_line(progress: dict[str, Any]) -> str:
    """The trainer's progress object (batches done/total, ETA) as one line; the CLI cannot import
    shared/training/progress.py, which says the same for the server's logs."""
    total = progress.get("batches_total")
    batches = f"{progress['batches_done']}/{total}" if total else str(progress["batches_done"])
    eta = progress.get("eta_s")
    eta_text = f", ETA {int(eta) // 60}m{int(eta) % 60:02d}s" if isinstance(eta, int | float) else ""
    return (f"epoch {progress['epoch']}/{progress['epochs']}, batch {batches}, "
            f"{progress.get('examples_per_s', 0):.0f} examples/s{eta_text}")


def batches(items: list[Batch], next_cursor: str | None = None) -> None:
    table = Table("id", "status", "kind", "model", "done/total", "failed", "created")
    for item in items:
        counts = item.request_counts
        table.add_row(item.id, item.status, item.kind, item.model, f"{counts.completed}/{counts.total}",
                      str(counts.failed), _when(item.created_at))
    out.print(table)
    if next_cursor:
        out.print(f"next page: --cursor {next_cursor}")
