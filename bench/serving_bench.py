"""Serving benchmark: end-to-end throughput and latency through the real stack.

For each kind it measures, in one run on one machine:
  limit     in-process batched inference of the same checkpoint (no HTTP, no queue); the
            64-input limit is measured again after the served runs, and targets use the faster
  naive     the stack with batching off: one forward pass per Celery task
  seqserve  the stack with dynamic batching (default settings)
at several client concurrencies, for single-input jobs and 64-input jobs (closed loop: each
client submits with `Prefer: wait` and sends the next job when the answer arrives), plus
open-loop runs (three by default) of synchronous single-input jobs at half the measured peak
rate for p99. The load comes from a separate lean process (`bench.load`), not this one, which
imports torch for the in-process limit.

    .venv/bin/python -m bench.serving_bench --kinds classify --out docs/benchmarks/serving.json

Needs Postgres and Redis (SEQSERVE_TEST_PG_URL, SEQSERVE_TEST_REDIS_URL as for the tests; without
the latter it claims a Redis database of its own, as a test run does) and the data directory. It is not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.load import Load, sample_inputs
from bench.machine import cpu_machine
from tests import processes

PG_ADMIN = os.environ.get("SEQSERVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATA_DIR = Path(os.environ.get("SEQSERVE_DATA_DIR", processes.REPO_ROOT.parent / "shared" / "datasets"))


@dataclass
class Result(Load):
    """A measured point: the load's numbers, and the stack it ran against."""

    pool: str = "prefork"  # the worker's Celery pool (limit rows: no worker)
    api_workers: int | None = None  # API processes (limit rows: no API)
    # CPU time per job (user + system, every process of the service): what a job costs the
    # machine, which contention does not hide the way it hides in latency.
    worker_cpu_ms: float | None = None
    api_cpu_ms: float | None = None
    machine: str = ""  # runs of different kinds may come from different sessions' machines
    measured_on: str = ""  # date (UTC)


def broker_url() -> str:
    """A Redis database of this run's own, claimed as a test run claims one (or
    SEQSERVE_TEST_REDIS_URL): on the fixed database 12, a leftover bench worker once took this
    run's wake-ups."""
    from tests.conftest import REDIS_URL

    return REDIS_URL


def create_database(migrate: bool = True) -> str:
    """A new database, at the head revision unless `migrate` is False (empty)."""
    name = f"seqserve_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    if migrate:
        from seqserve.shared.db.migrate import upgrade

        upgrade(url)
    return url


def drop_database(url: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def register(env: dict[str, str], name: str, task: str, checkpoint: Path) -> None:
    from seqserve.shared.checkpoint import load_checkpoint, sha256_file
    from seqserve.shared.config import reset_settings
    from seqserve.shared.db.session import dispose_engines, session_scope
    from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version

    os.environ.update(env)
    reset_settings()
    dispose_engines()
    payload = load_checkpoint(checkpoint, None)
    metrics = payload.get("metrics") or {"unknown": 0.0}
    with session_scope() as session:
        version = register_version(session, NewVersion(
            model_name=name, task=task, checkpoint_uri=str(checkpoint.resolve()), sha256=sha256_file(checkpoint),
            size_bytes=checkpoint.stat().st_size, metrics=metrics, primary_metric=next(iter(metrics)),
            dataset_fingerprint=payload.get("data_fingerprint", ""),
        ))
        promote_if_better(session, version, 0.0)
        if not os.environ.get("SEQSERVE_API_KEY"):
            # The load generator (bench.load, a child of this process) sends it: the stack runs
            # with auth on, as it ships, so its cost is in the numbers.
            from seqserve.shared.auth.service import create

            os.environ["SEQSERVE_API_KEY"] = create(session, "bench", "bench", ["jobs:read", "jobs:write"])[1]


def in_process_limit(kind: str, checkpoint: Path, texts: list[str], batch: int, seconds: float,
                     backend: str = "torch", device: str = "cpu") -> Result:
    import torch

    from seqserve.services.worker.backends import attach_backend
    from seqserve.services.worker.handlers import build_handler
    from seqserve.shared.checkpoint import load_checkpoint, sha256_file
    from seqserve.shared.config import Settings

    torch.set_num_threads(1)
    handler = build_handler(load_checkpoint(checkpoint, None), torch.device(device))
    # The worker's backend, so that the limit is measured on the path the stack serves.
    attach_backend(handler, checkpoint, sha256_file(checkpoint), Settings(inference_backend=backend, torch_threads=1))
    params = default_params(kind)
    jobs, started, cursor = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        chunk = [texts[(cursor + i) % len(texts)] for i in range(batch)]
        handler.run(chunk, params, kind=kind)
        cursor += batch
        jobs += 1
    elapsed = time.perf_counter() - started
    return Result(kind, "limit", batch, 1, jobs, elapsed, jobs / elapsed, jobs * batch / elapsed)


def default_params(kind: str) -> dict[str, Any]:
    from seqserve.shared.jobs.kinds import validate_params

    extra = {"generate": {"max_tokens": 10, "temperature": 0.0}, "translate": {"beam_size": 4}}.get(kind, {})
    return validate_params(kind, extra)


class LoadProcess:
    """A `bench.load` process driving the stack; `measure()` runs its next measured run and
    adds the CPU every process of the stack spent per job meanwhile."""

    def __init__(self, base: str, kind: str, model: str, load_args: list[str], seconds: float) -> None:
        command = [sys.executable, "-m", "bench.load", "--base", base, "--kind", kind, "--model", model,
                   "--data-dir", str(DATA_DIR), "--seconds", str(seconds), *load_args]
        self.proc = subprocess.Popen(command, cwd=processes.REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def measure(self, procs: dict[str, subprocess.Popen[bytes]]) -> tuple[Result, dict[str, float]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"bench.load exited with {self.proc.wait()}")
        before = {name: processes.session_cpu_seconds(proc.pid) for name, proc in procs.items()}
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        result = Result(**json.loads(self.proc.stdout.readline()))
        per_job = {name: (processes.session_cpu_seconds(proc.pid) - before[name]) * 1000 / max(result.jobs, 1)
                   for name, proc in procs.items()}
        return result, per_job

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.proc.wait(timeout=60) != 0:
            raise RuntimeError(f"bench.load exited with {self.proc.returncode}")


def run_mode(mode: str, env: dict[str, str], kind: str, model: str, args: argparse.Namespace,
             logs: Path) -> list[Result]:
    import redis

    redis.Redis.from_url(env["SEQSERVE_BROKER_URL"]).flushdb()
    results = []
    pool, api_workers = env["SEQSERVE_WORKER_POOL"], int(env["SEQSERVE_API_WORKERS"])
    with processes.running_processes(env, logs / mode, ["worker", "--concurrency", "1"]) as (base, procs):

        def measured(load_args: list[str], runs: int = 1, seconds: float = args.seconds, keep: bool = True) -> None:
            load = LoadProcess(base, kind, model, load_args, seconds)
            try:
                for _ in range(runs):
                    result, per_job = load.measure(procs)
                    result = replace(result, pool=pool, api_workers=api_workers,
                                     worker_cpu_ms=round(per_job["worker"], 2), api_cpu_ms=round(per_job["api"], 2))
                    if keep:
                        print(json.dumps(asdict(result)), flush=True)
                        results.append(result)
            finally:
                load.close()

        measured(["closed", "--concurrency", "4", "--label", "warm-up"], seconds=5, keep=False)  # loads the model
        for per_job in (1, 64):
            for concurrency in args.concurrency:
                measured(["closed", "--per-job", str(per_job), "--concurrency", str(concurrency), "--label", mode])
        if mode == "seqserve" and kind == "classify":
            rate = max(r.jobs_per_second for r in results if r.inputs_per_job == 1) / 2
            # Several runs back to back on the same connections (after two unmeasured seconds):
            # one 10 s run's p99 is its 16th-worst answer, and this machine's speed swings.
            measured(["open", "--rate", f"{rate:.1f}", "--warmup", "2", "--runs", str(args.p99_runs)],
                     runs=args.p99_runs)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=["classify"])
    parser.add_argument("--checkpoint", action="append", default=[], metavar="KIND=PATH",
                        help="checkpoint per kind; default: train the quick preset")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--p99-runs", type=int, default=3, help="open-loop runs at half the peak (the target uses their median)")
    parser.add_argument("--pool", choices=("prefork", "solo"), default="prefork",
                        help="the worker's pool, for naive and seqserve alike")
    parser.add_argument("--api-workers", type=int, default=1,
                        help="API processes (SEQSERVE_API_WORKERS; 1, the default, served 2 cores best)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="the worker's (and the limit's) device")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="torch",
                        help="SEQSERVE_INFERENCE_BACKEND of the worker and the in-process limit")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/serving.json"))
    args = parser.parse_args()
    workdir = Path(f"/tmp/seqserve-bench-{os.getpid()}")
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    url = create_database()
    try:
        results = bench_all(args, url, workdir, checkpoints)
    finally:
        drop_database(url)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine, today = cpu_machine(), time.strftime("%Y-%m-%d", time.gmtime())
    results = [replace(r, machine=machine, measured_on=today) for r in results]
    # Rows of kinds this run did not measure are kept (one kind may be re-measured alone).
    kept = []
    if args.out.exists():
        kept = [Result(**row) for row in json.loads(args.out.read_text())["results"] if row["kind"] not in args.kinds]
    results = kept + results
    args.out.write_text(json.dumps({"results": [asdict(r) for r in results]}, indent=2))
    args.out.with_suffix(".md").write_text(report(results))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def _best(results: list[Result], kind: str, mode: str, per_job: int, field: str) -> float | None:
    values = [getattr(r, field) for r in results if (r.kind, r.mode, r.inputs_per_job) == (kind, mode, per_job)]
    return max(values) if values else None


def targets(results: list[Result]) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, how, met) for the issue's serving targets that this run measured."""
    rows = []
    for kind, goal in (("classify", 2.0), ("translate", 5.0)):
        ours, naive = _best(results, kind, "seqserve", 1, "jobs_per_second"), _best(results, kind, "naive", 1, "jobs_per_second")
        if ours and naive:
            ratio = ours / naive
            rows.append((f"single-input {kind} jobs/s >= {goal:g}x naive", f"{ratio:.2f}x ({ours:.1f} vs {naive:.1f} jobs/s)",
                         "best over concurrencies", ratio >= goal))
    ours = _best(results, "classify", "seqserve", 64, "sentences_per_second")
    limit = _best(results, "classify", "limit", 64, "sentences_per_second")
    if ours and limit:
        rows.append(("64-input classify >= 70% of in-process sentences/s", f"{ours / limit:.0%} ({ours:.0f} vs {limit:.0f})",
                     "best over concurrencies", ours / limit >= 0.7))
    p99s = [r.p99_ms for r in results if r.mode.startswith("open-loop") and r.p99_ms is not None]
    if p99s:
        mode = next(r.mode for r in results if r.mode.startswith("open-loop"))
        p99 = statistics.median(p99s)
        runs = ", ".join(f"{value:g}" for value in p99s)
        rows.append(("p99 sync classify at half peak <= 25 ms", f"{p99:g} ms ({mode}; median of {len(p99s)} runs: {runs})",
                     "open loop", p99 <= 25))
    return rows


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def report(results: list[Result]) -> str:
    runs: dict[tuple[str, str], list[str]] = {}
    for r in results:
        kinds = runs.setdefault((r.machine, r.measured_on), [])
        if r.kind not in kinds:
            kinds.append(r.kind)
    lines = ["# Serving benchmark", "",
             "Measured by `bench/serving_bench.py`; each kind's rows come from one run on one machine:", ""]
    lines += [f"- {', '.join(kinds)}: {machine} ({day})" for (machine, day), kinds in runs.items()]
    lines += ["", "| target | measured | how | met |", "|---|---|---|---|"]
    lines += [f"| {t} | {m} | {h} | {'yes' if ok else 'no'} |" for t, m, h, ok in targets(results)]
    lines += ["", "| kind | mode | worker pool | API procs | inputs/job | clients | jobs/s | sentences/s | p50 ms | p95 ms "
              "| p99 ms | failed | worker CPU ms/job | API CPU ms/job |", "|---" * 14 + "|"]
    for r in results:
        pool = "-" if r.mode == "limit" else r.pool
        api = "-" if r.mode == "limit" else r.api_workers or "?"
        lines.append(f"| {r.kind} | {r.mode} | {pool} | {api} | {r.inputs_per_job} | {r.concurrency} | {r.jobs_per_second:.1f} "
                     f"| {r.sentences_per_second:.0f} | {r.p50_ms} | {r.p95_ms} | {r.p99_ms} | {r.failed} "
                     f"| {_blank(r.worker_cpu_ms)} | {_blank(r.api_cpu_ms)} |")
    return "\n".join(lines) + "\n"


TASK_OF = {"classify": "classify", "tag": "tag", "generate": "generate", "score": "generate", "translate": "translate"}


def bench_all(args: argparse.Namespace, url: str, workdir: Path, checkpoints: dict[str, str]) -> list[Result]:
    base_env = {
        "SEQSERVE_DATABASE_URL": url, "SEQSERVE_BROKER_URL": broker_url(), "SEQSERVE_VAR_DIR": str(workdir / "var"),
        "SEQSERVE_DATA_DIR": str(DATA_DIR), "SEQSERVE_DEVICE": args.device, "SEQSERVE_TORCH_THREADS": "1",
        "SEQSERVE_INFERENCE_BACKEND": args.backend,
        "SEQSERVE_WORKER_METRICS_PORT": "0", "SEQSERVE_LOG_LEVEL": "WARNING", "SEQSERVE_MAX_QUEUE_DEPTH": "1000000",
        "SEQSERVE_API_WORKERS": str(args.api_workers), "SEQSERVE_WORKER_POOL": args.pool,
    }
    naive = base_env | {"SEQSERVE_BATCH_MAX_DELAY_MS": "0",
                        "SEQSERVE_BATCH_MAX_INPUTS": json.dumps(dict.fromkeys(TASK_OF, 1))}
    results: list[Result] = []
    for kind in args.kinds:
        checkpoint = Path(checkpoints[kind]) if kind in checkpoints else train_quick(TASK_OF[kind], workdir)
        model = f"bench-{kind}"
        register(base_env, model, TASK_OF[kind], checkpoint)
        texts = sample_inputs(kind, DATA_DIR)
        for per_job in (1, 64):
            result = in_process_limit(kind, checkpoint, texts, per_job, args.seconds, args.backend, args.device)
            print(json.dumps(asdict(result)), flush=True)
            results.append(result)
        (workdir / "logs" / "naive").mkdir(parents=True, exist_ok=True)
        (workdir / "logs" / "seqserve").mkdir(parents=True, exist_ok=True)
        results += run_mode("naive", naive, kind, model, args, workdir / "logs")
        results += run_mode("seqserve", base_env, kind, model, args, workdir / "logs")
        # The limit again, now: this machine's speed drifts over minutes, and the target takes
        # the faster of the two (the served rate must hold up against either).
        result = in_process_limit(kind, checkpoint, texts, 64, args.seconds, args.backend, args.device)
        print(json.dumps(asdict(result)), flush=True)
        results.append(result)
    return results


def train_quick(task: str, workdir: Path) -> Path:
    from seqserve.services.trainer.service import trainers

    out = workdir / "models" / task / "model.pt"
    outcome = trainers()[task](data_dir=DATA_DIR, out_path=out, preset="quick", progress=False)
    return outcome.checkpoint_path


if __name__ == "__main__":
    main()
