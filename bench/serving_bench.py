"""Serving benchmark: end-to-end throughput and latency through the real stack.

For each kind it measures, in one run on one machine:
  limit     in-process batched inference of the same checkpoint (no HTTP, no queue)
  naive     the stack with batching off: one forward pass per Celery task
  seqserve  the stack with dynamic batching (default settings)
at several client concurrencies, for single-input jobs and 64-input jobs (closed loop: each
client submits with `Prefer: wait` and sends the next job when the answer arrives), plus an
open-loop run of synchronous single-input jobs at half the measured peak rate for p99.

    .venv/bin/python -m bench.serving_bench --kinds classify --out docs/benchmarks/serving.json

Needs Postgres and Redis (SEQSERVE_TEST_PG_URL, SEQSERVE_TEST_REDIS_URL as for the tests) and
the data directory. It is not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.machine import cpu_machine
from shared.heap import freeze_startup_objects
from tests import processes

PG_ADMIN = os.environ.get("SEQSERVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("SEQSERVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
DATA_DIR = Path(os.environ.get("SEQSERVE_DATA_DIR", processes.REPO_ROOT.parent / "shared" / "datasets"))


@dataclass
class Result:
    kind: str
    mode: str
    inputs_per_job: int
    concurrency: int
    jobs: int
    seconds: float
    jobs_per_second: float
    sentences_per_second: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    failed: int = 0
    pool: str = "prefork"  # the worker's Celery pool (limit rows: no worker)
    api_workers: int | None = None  # API processes (limit rows: no API)
    # CPU time per job (user + system, every process of the service): what a job costs the
    # machine, which contention does not hide the way it hides in latency.
    worker_cpu_ms: float | None = None
    api_cpu_ms: float | None = None
    machine: str = ""  # runs of different kinds may come from different sessions' machines
    measured_on: str = ""  # date (UTC)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def sample_inputs(kind: str) -> list[str]:
    """Real sentences from the dev sets, as users would send them."""
    if kind in ("classify", "tag", "score", "generate"):
        lines = (DATA_DIR / "sst2" / "glue" / "dev.tsv").read_text().splitlines()[1:]
        return [line.split("\t")[0].strip() for line in lines]
    import gzip

    with gzip.open(DATA_DIR / "multi30k_en_de" / "tok" / "val.lc.norm.tok.en.gz", "rt") as handle:
        return [line.strip() for line in handle if line.strip()]


def create_database() -> str:
    name = f"seqserve_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    from shared.db.migrate import upgrade

    upgrade(url)
    return url


def drop_database(url: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def register(env: dict[str, str], name: str, task: str, checkpoint: Path) -> None:
    from shared.checkpoint import load_checkpoint, sha256_file
    from shared.config import reset_settings
    from shared.db.session import dispose_engines, session_scope
    from shared.registry.service import NewVersion, promote_if_better, register_version

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


def in_process_limit(kind: str, checkpoint: Path, texts: list[str], batch: int, seconds: float) -> Result:
    import torch

    from services.worker.handlers import build_handler
    from shared.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    handler = build_handler(load_checkpoint(checkpoint, None), torch.device("cpu"))
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
    from shared.jobs.kinds import validate_params

    extra = {"generate": {"max_tokens": 10, "temperature": 0.0}, "translate": {"beam_size": 4}}.get(kind, {})
    return validate_params(kind, extra)


class Connection:
    """A minimal HTTP/1.1 keep-alive client for JSON POSTs. The load generator shares the
    machine with the stack it measures, so it must cost as little CPU as possible (httpx
    costs about 2 ms per request here)."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        payload = json.dumps(body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(payload)}\r\n{head}\r\n").encode() + payload
        for attempt in (1, 2):
            fresh = self.writer is None
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(request)
            status_line = await self.reader.readline()
            if status_line or fresh or attempt == 2:
                break
            self.close()  # the server closed an idle keep-alive connection: send again on a new one
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, json.loads(await self.reader.readexactly(length))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _post_job(conn: Connection, body: dict[str, Any]) -> bool:
    """Submit with Prefer: wait; True when the job came back succeeded."""
    try:
        status, job = await conn.post("/v1/jobs", body, {"Prefer": "wait=60"})
    except (OSError, asyncio.IncompleteReadError, ValueError):
        conn.close()
        return False
    return status == 200 and job.get("status") == "succeeded"


async def closed_loop(base: str, kind: str, model: str, texts: list[str], per_job: int, concurrency: int,
                      seconds: float, mode: str) -> Result:
    latencies: list[float] = []
    failed = 0
    deadline = time.perf_counter() + seconds
    params = {"generate": {"max_tokens": 10, "temperature": 0.0}}.get(kind, {})

    async def client(offset: int) -> None:
        nonlocal failed
        conn = Connection(base)
        cursor = offset * 997
        while time.perf_counter() < deadline:
            inputs = [texts[(cursor + i) % len(texts)] for i in range(per_job)]
            cursor += per_job
            started = time.perf_counter()
            if await _post_job(conn, {"kind": kind, "model": model, "inputs": inputs, "params": params}):
                latencies.append(time.perf_counter() - started)
            else:
                failed += 1
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return summarize(kind, mode, per_job, concurrency, latencies, elapsed, failed)


async def open_loop(base: str, kind: str, model: str, texts: list[str], rate: float, seconds: float,
                    idle: list[Connection] | None = None, keep_open: bool = False) -> Result:
    """Jobs arrive at a fixed rate regardless of answers (latency measured per job). `idle`:
    keep-alive connections to start from (and where the ones used end up); `keep_open` leaves
    them open for another run in the same event loop."""
    latencies: list[float] = []
    failed = 0
    idle = idle if idle is not None else []

    async def one(text_: str) -> None:
        nonlocal failed
        conn = idle.pop() if idle else Connection(base)
        started = time.perf_counter()
        if await _post_job(conn, {"kind": kind, "model": model, "inputs": [text_]}):
            latencies.append(time.perf_counter() - started)
        else:
            failed += 1
        idle.append(conn)

    tasks = []
    started = time.perf_counter()
    for number in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + number / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(texts[number % len(texts)])))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    if not keep_open:
        for conn in idle:
            conn.close()
    return summarize(kind, f"open-loop@{rate:.0f}/s", 1, 0, latencies, elapsed, failed)


def summarize(kind: str, mode: str, per_job: int, concurrency: int, latencies: list[float], elapsed: float,
              failed: int) -> Result:
    jobs = len(latencies)
    ms = [x * 1000 for x in latencies] or [float("nan")]
    return Result(kind, mode, per_job, concurrency, jobs, elapsed, jobs / elapsed, jobs * per_job / elapsed,
                  round(statistics.median(ms), 2), round(percentile(ms, 95), 2), round(percentile(ms, 99), 2), failed)


def run_mode(mode: str, env: dict[str, str], kind: str, model: str, texts: list[str], args: argparse.Namespace,
             logs: Path) -> list[Result]:
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    # This process imported torch (the in-process limit): one full GC pass of its heap stalls
    # the load generator ~80 ms, which would show up as the stack's latency.
    freeze_startup_objects()
    results = []
    pool = env["SEQSERVE_WORKER_POOL"]
    with processes.running_processes(env, logs / mode, ["worker", "--concurrency", "1"]) as (base, procs):

        def measured(load: Callable[[], Awaitable[Result]],
                     warmup: Callable[[], Awaitable[Result]] | None = None) -> None:
            """Run `load` (after `warmup`, unmeasured, in the same event loop) and record it
            with the CPU every process of the stack spent per job meanwhile."""

            async def run() -> tuple[Result, dict[str, float]]:
                if warmup is not None:
                    await warmup()
                before = {name: processes.session_cpu_seconds(proc.pid) for name, proc in procs.items()}
                return await load(), before

            result, before = asyncio.run(run())
            per_job = {name: (processes.session_cpu_seconds(proc.pid) - before[name]) * 1000 / max(result.jobs, 1)
                       for name, proc in procs.items()}
            result = replace(result, pool=pool, api_workers=int(env["SEQSERVE_API_WORKERS"]),
                             worker_cpu_ms=round(per_job["worker"], 2),
                             api_cpu_ms=round(per_job["api"], 2))
            print(json.dumps(asdict(result)), flush=True)
            results.append(result)

        asyncio.run(closed_loop(base, kind, model, texts, 1, 4, 5, mode))  # warm up: load the model
        for per_job in (1, 64):
            for concurrency in args.concurrency:
                measured(lambda: closed_loop(base, kind, model, texts, per_job, concurrency, args.seconds, mode))
        if mode == "seqserve" and kind == "classify":
            rate = max(r.jobs_per_second for r in results if r.inputs_per_job == 1) / 2
            # Two unmeasured seconds at the same rate first, on the same connections: the client
            # opens the keep-alive connections a steady stream needs (at first every request
            # opens one), as a long-running client has.
            connections: list[Connection] = []
            measured(lambda: open_loop(base, kind, model, texts, rate, args.seconds, connections),
                     warmup=lambda: open_loop(base, kind, model, texts, rate, 2.0, connections, keep_open=True))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=["classify"])
    parser.add_argument("--checkpoint", action="append", default=[], metavar="KIND=PATH",
                        help="checkpoint per kind; default: train the quick preset")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--pool", choices=("prefork", "solo"), default="prefork",
                        help="the worker's pool, for naive and seqserve alike")
    parser.add_argument("--api-workers", type=int, default=1,
                        help="API processes (SEQSERVE_API_WORKERS; 1, the default, served 2 cores best)")
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
    ours, limit = _best(results, "classify", "seqserve", 64, "sentences_per_second"), _best(results, "classify", "limit", 64, "sentences_per_second")
    if ours and limit:
        rows.append(("64-input classify >= 70% of in-process sentences/s", f"{ours / limit:.0%} ({ours:.0f} vs {limit:.0f})",
                     "best over concurrencies", ours / limit >= 0.7))
    open_loop = [r for r in results if r.mode.startswith("open-loop")]
    if open_loop:
        p99 = open_loop[0].p99_ms
        rows.append(("p99 sync classify at half peak <= 25 ms", f"{p99} ms ({open_loop[0].mode})", "open loop",
                     p99 is not None and p99 <= 25))
    return rows


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def report(results: list[Result]) -> str:
    runs: dict[tuple[str, str], list[str]] = {}
    for r in results:
        kinds = runs.setdefault((r.machine, r.measured_on), [])
        if r.kind not in kinds:
            kinds.append(r.kind)
    lines = ["# Serving benchmark", "", "Measured by `bench/serving_bench.py`; each kind's rows come from one run on one machine:", ""]
    lines += [f"- {', '.join(kinds)}: {machine} ({day})" for (machine, day), kinds in runs.items()]
    lines += ["", "| target | measured | how | met |", "|---|---|---|---|"]
    lines += [f"| {t} | {m} | {h} | {'yes' if ok else 'no'} |" for t, m, h, ok in targets(results)]
    lines += ["", "| kind | mode | worker pool | API procs | inputs/job | clients | jobs/s | sentences/s | p50 ms | p95 ms "
              "| p99 ms | failed | worker CPU ms/job | API CPU ms/job |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
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
        "SEQSERVE_DATABASE_URL": url, "SEQSERVE_BROKER_URL": REDIS, "SEQSERVE_VAR_DIR": str(workdir / "var"),
        "SEQSERVE_DATA_DIR": str(DATA_DIR), "SEQSERVE_DEVICE": "cpu", "SEQSERVE_TORCH_THREADS": "1",
        "SEQSERVE_WORKER_METRICS_PORT": "0", "SEQSERVE_LOG_LEVEL": "WARNING", "SEQSERVE_MAX_QUEUE_DEPTH": "1000000",
        "SEQSERVE_API_WORKERS": str(args.api_workers), "SEQSERVE_WORKER_POOL": args.pool,
    }
    naive = base_env | {"SEQSERVE_BATCH_MAX_DELAY_MS": "0", "SEQSERVE_COALESCE_TRIGGERS": "false",
                        "SEQSERVE_BATCH_MAX_INPUTS": json.dumps({kind: 1 for kind in TASK_OF})}
    results: list[Result] = []
    for kind in args.kinds:
        checkpoint = Path(checkpoints[kind]) if kind in checkpoints else train_quick(TASK_OF[kind], workdir)
        model = f"bench-{kind}"
        register(base_env, model, TASK_OF[kind], checkpoint)
        texts = sample_inputs(kind)
        for per_job in (1, 64):
            result = in_process_limit(kind, checkpoint, texts, per_job, args.seconds)
            print(json.dumps(asdict(result)), flush=True)
            results.append(result)
        (workdir / "logs" / "naive").mkdir(parents=True, exist_ok=True)
        (workdir / "logs" / "seqserve").mkdir(parents=True, exist_ok=True)
        results += run_mode("naive", naive, kind, model, texts, args, workdir / "logs")
        results += run_mode("seqserve", base_env, kind, model, texts, args, workdir / "logs")
    return results


def train_quick(task: str, workdir: Path) -> Path:
    from services.trainer.service import trainers

    out = workdir / "models" / task / "model.pt"
    outcome = trainers()[task](data_dir=DATA_DIR, out_path=out, preset="quick", progress=False)
    return outcome.checkpoint_path


if __name__ == "__main__":
    main()
