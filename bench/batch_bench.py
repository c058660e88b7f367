"""Corpus batch benchmark: a whole corpus through the real stack (api, one worker, beat), from
upload to the output file downloaded, against the in-process batched rate of the same
checkpoint measured in the same run.

  tag       UD EWT train+dev+test as one CoNLL-U file (about 16k sentences)
  classify  SST-2 train as one text file (67k phrases)

During each batch a probe submits single-input classify jobs (normal priority, Prefer: wait)
and their p99 is compared with the same probe on the idle stack just before; the API's and the
worker's RSS (every process of each) are read at 10% and 90% progress.

    .venv/bin/python -m bench.batch_bench --limit 2000 --out docs/benchmarks/batches.md

`--limit N` takes the first N inputs of each corpus (a slice for a short run); `--ab` runs each
kind twice, first with this session's batch settings off (`OFF`), on stacks of their own. Needs
Postgres and Redis as the tests do. Not part of CI.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, text

from bench.machine import cpu_machine
from bench.serving_bench import DATA_DIR, create_database, drop_database, in_process_limit, register, train_quick
from seqserve.shared.config import get_settings
from tests import processes

_PAGE = 4096
# The A/B's other side, as main: the output written whole at the end, low-priority wake-ups
# draining their group, every input of a chunk into the drift statistics, driver steps without
# a bound on the inputs they read (docs/benchmarks/batches.md).
OFF = {"SEQSERVE_BATCH_OUTPUT_AS_CHUNKS_END": "false", "SEQSERVE_BATCH_YIELD_TO_INTERACTIVE": "false",
       "SEQSERVE_DRIFT_INPUTS_PER_CHUNK": str(1 << 30), "SEQSERVE_BATCH_STEP_INPUTS": str(1 << 30)}


@dataclass
class BatchRun:
    kind: str
    inputs: int
    seconds: float  # upload start -> output file downloaded
    inputs_per_second: float
    in_process_per_second: float
    ratio: float
    probe_p99_idle_ms: float
    probe_p99_busy_ms: float
    rss_mb: dict[str, dict[str, float]] = field(default_factory=dict)  # "10%"/"90%" -> api, worker
    chunks: dict[str, float] = field(default_factory=dict)  # from the job rows: _chunk_timings
    # The busy probe's slowest jobs: (seconds after the upload began, latency ms), slowest first.
    probe_slowest: list[tuple[float, float]] = field(default_factory=list)
    variant: str = "new"


def _chunk_timings(url: str, batch_id: str) -> dict[str, float]:
    """Where a batch's time went, from its job rows: the worker's busy seconds (sum of chunk
    run times), a chunk's mean wait from insert to start, and the finalize lag (last chunk
    ended -> batch completed)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT count(*), extract(epoch FROM sum(j.finished_at - j.started_at)),"
                " extract(epoch FROM avg(j.started_at - j.created_at)),"
                " extract(epoch FROM max(b.completed_at) - max(j.finished_at)),"
                " extract(epoch FROM max(j.finished_at) - min(j.created_at))"
                " FROM jobs j JOIN batches b ON b.id = j.batch_id WHERE j.batch_id = :id"), {"id": batch_id}).one()
    finally:
        engine.dispose()
    names = ("chunks", "busy_s", "mean_wait_s", "finalize_lag_s", "first_insert_to_last_end_s")
    return {name: round(float(value or 0), 3) for name, value in zip(names, row, strict=True)}


def _rss_mb(session_id: int) -> float:
    """Resident memory of every process in the session (a service and its children)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session_id:
                total += int((stat.parent / "statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return round(total / 2**20, 1)


def _corpus(kind: str, limit: int | None) -> tuple[str, bytes, int]:
    if kind == "tag":
        folder = DATA_DIR / "ud_english_ewt"
        text = "".join(gzip.decompress((folder / f"en_ewt-ud-{part}.conllu.gz").read_bytes()).decode()
                       for part in ("train", "dev", "test"))
        sentences = [block for block in text.split("\n\n") if block.strip()][:limit]
        return "ewt.conllu", "".join(block + "\n\n" for block in sentences).encode(), len(sentences)
    rows = (DATA_DIR / "sst2" / "glue" / "train.tsv").read_text().splitlines()[1:]
    texts = [row.split("\t")[0].strip() for row in rows][:limit]
    return "sst2-train.txt", "\n".join(texts).encode(), len(texts)


def _texts(content: bytes, kind: str) -> list[Any]:
    if kind == "classify":
        return content.decode().splitlines()[:2000]
    sentences = content.decode().split("\n\n")[:2000]
    return [[line.split("\t")[1] for line in block.splitlines() if line and line.split("\t")[0].isdigit()]
            for block in sentences if block.strip()]


class Probe(threading.Thread):
    """Single-input classify jobs, one after another, each waited for; latencies in ms."""

    def __init__(self, base: str, model: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.model, self.headers = base, model, headers
        self.latencies: list[float] = []
        self.sent_at: list[float] = []  # perf_counter at each latency's submission
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=60) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                response = client.post(f"{self.base}/v1/jobs", headers={"Prefer": "wait=30"}, json={
                    "kind": "classify", "model": self.model, "inputs": ["a gorgeous , witty , seductive movie ."]})
                if response.status_code == 200:
                    self.latencies.append((time.perf_counter() - started) * 1000)
                    self.sent_at.append(started)
                time.sleep(0.2)


def _p99(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=100)[98], 1) if len(values) >= 2 else float("nan")


def _idle_p99(base: str, model: str, headers: dict[str, str], seconds: float) -> float:
    for _ in range(3):  # warm: the worker loads the model on its first job
        httpx.post(f"{base}/v1/jobs", headers=headers | {"Prefer": "wait=60"}, timeout=90,
                   json={"kind": "classify", "model": model, "inputs": ["warm up"]})
    probe = Probe(base, model, headers)
    probe.start()
    time.sleep(seconds)
    probe.stop.set()
    probe.join()
    return _p99(probe.latencies)


def run_batch(base: str, procs: dict[str, Any], kind: str, model: str, probe_model: str, headers: dict[str, str],
              content: tuple[str, bytes, int], limit_rate: float, idle_seconds: float, url: str) -> BatchRun:
    name, data, count = content
    idle = _idle_p99(base, probe_model, headers, idle_seconds)
    probe = Probe(base, probe_model, headers)
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
        file_id = client.post("/v1/files", files={"file": (name, data)}).json()["id"]
        batch = client.post("/v1/batches", json={"kind": kind, "model": model, "input_file": file_id}).json()
        probe.start()
        rss: dict[str, dict[str, float]] = {}
        while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.2)
            batch = client.get(f"/v1/batches/{batch['id']}").json()
            done = batch["request_counts"]["completed"] / max(1, count)
            for mark, fraction in (("10%", 0.1), ("90%", 0.9)):
                if mark not in rss and done >= fraction:
                    rss[mark] = {"api": _rss_mb(procs["api"].pid), "worker": _rss_mb(procs["worker"].pid)}
        output = client.get(f"/v1/batches/{batch['id']}/output").content
    elapsed = time.perf_counter() - started
    probe.stop.set()
    probe.join()
    assert batch["status"] == "completed", batch
    assert output.count(b"\n") == count, (output.count(b"\n"), count)
    rate = count / elapsed
    return BatchRun(kind, count, round(elapsed, 1), round(rate, 1), round(limit_rate, 1), round(rate / limit_rate, 3),
                    idle, _p99(probe.latencies), rss, _chunk_timings(url, batch["id"]),
                    probe_slowest=_slowest(probe, started))


def _slowest(probe: Probe, since: float, count: int = 3) -> list[tuple[float, float]]:
    pairs = sorted(zip(probe.sent_at, probe.latencies, strict=True), key=lambda pair: -pair[1])[:count]
    return [(round(at - since, 1), round(ms, 1)) for at, ms in pairs]


def report(runs: list[BatchRun], args: argparse.Namespace) -> str:
    lines = ["# Corpus batches", "", f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
             f"{cpu_machine()}; one worker (concurrency 1), one API process, beat; `--limit {args.limit}`. "
             "Machine shared with other sessions' work: treat the numbers as a floor.", "",
             "| variant | kind | inputs | seconds | inputs/s | in-process/s | ratio | probe p99 idle / busy (ms) | "
             "RSS at 10% / 90% (MB) | chunks: n, busy s, mean wait s, finalize lag s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        rss = " / ".join(f"api {m['api']} worker {m['worker']}" for m in run.rss_mb.values())
        chunks = ", ".join(str(run.chunks.get(name, "-")) for name in ("chunks", "busy_s", "mean_wait_s",
                                                                         "finalize_lag_s"))
        lines.append(f"| {run.variant} | {run.kind} | {run.inputs} | {run.seconds} | {run.inputs_per_second} | "
                     f"{run.in_process_per_second} | {run.ratio} | {run.probe_p99_idle_ms} / {run.probe_p99_busy_ms} | "
                     f"{rss} | {chunks} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["tag", "classify"], choices=["tag", "classify"])
    parser.add_argument("--limit", type=int, default=None, help="first N inputs of each corpus")
    parser.add_argument("--seconds", type=float, default=10.0, help="in-process measurement and idle probe time")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--ab", action="store_true",
                        help="also run each kind with the growing output, the yield, the drift sampling and the step bound off")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="TASK=PATH",
                        help="use this checkpoint for the task instead of training the quick preset")
    args = parser.parse_args()
    # A Redis database of this run's own, claimed as a test run claims one: on the shared fixed
    # one, another run's leftover workers took this run's wake-ups (docs/benchmarks/batches.md).
    from tests.conftest import REDIS_URL as REDIS

    redis.Redis.from_url(REDIS).flushdb()
    url, workdir = create_database(), Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        env = {"SEQSERVE_DATABASE_URL": url, "SEQSERVE_BROKER_URL": REDIS, "SEQSERVE_VAR_DIR": str(workdir / "var"),
               "SEQSERVE_DATA_DIR": str(DATA_DIR), "SEQSERVE_DEVICE": "cpu", "SEQSERVE_TORCH_THREADS": "1",
               "SEQSERVE_WORKER_METRICS_PORT": "0", "SEQSERVE_LOG_LEVEL": "WARNING"}
        given = dict(item.split("=", 1) for item in args.checkpoint)
        checkpoints = {task: Path(given[task]) if task in given else train_quick(task, workdir)
                       for task in {"classify", *args.kinds}}
        for task, checkpoint in checkpoints.items():
            register(env, f"bench-{task}", task, checkpoint)
        headers = {"Authorization": f"Bearer {os.environ['SEQSERVE_API_KEY']}"}
        (workdir / "logs").mkdir()
        runs = []
        variants = {"new": {}} if not args.ab else {"off (as main)": OFF, "new": {}}  # env per variant
        for kind in args.kinds:
            content = _corpus(kind, args.limit)
            chunk = get_settings().batch_chunk_inputs[kind]
            limit = in_process_limit(kind, checkpoints[kind], _texts(content[1], kind), chunk, args.seconds)
            for number, (variant, extra) in enumerate(variants.items()):
                logs = workdir / "logs" / f"{kind}-{number}"
                logs.mkdir()
                with processes.running_processes(env | extra, logs,
                                                 ["worker", "--concurrency", "1"], ["beat"]) as (base, procs):
                    run = run_batch(base, procs, kind, f"bench-{kind}", "bench-classify", headers, content,
                                    limit.sentences_per_second, args.seconds, url)
                run.variant = variant
                print(json.dumps(asdict(run)), flush=True)
                runs.append(run)
        text = report(runs, args)
        print(text)
        if args.out:
            args.out.write_text(text)
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
