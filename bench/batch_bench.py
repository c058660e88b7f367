"""Corpus batch benchmark: a whole corpus through the real stack (api, one worker, beat), from
upload to the output file downloaded, against the in-process batched rate of the same
checkpoint measured in the same run.

  tag       UD EWT train+dev+test as one CoNLL-U file (about 16k sentences)
  classify  SST-2 train as one text file (67k phrases)

During each batch a probe submits single-input classify jobs (normal priority, Prefer: wait)
and their p99 is compared with the same probe on the idle stack just before (`--idle-seconds`,
30 by default: a p99 needs more than the ~45 probes of 10 s); the API's and the
worker's RSS (every process of each) are read at 10% and 90% progress.

    .venv/bin/python -m bench.batch_bench --limit 2000 --out docs/benchmarks/batches.md

`--limit N` takes the first N inputs of each corpus (a slice for a short run); `--variants`
runs each kind on several stacks one after another (`VARIANTS`: the batch settings off as on
main, the defaults, maintenance on a worker process of its own), each its own stack, with the
in-process rate measured right before and right after it; `--chunk-inputs 64 32/32` runs each
variant again with the batch's chunks of 64 inputs, then of 32 in passes of at most 32. Needs
Postgres and Redis as the tests do. Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
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
ALL_INFERENCE = "inference.high,inference.normal,inference.low,webhooks"


@dataclass(frozen=True)
class Variant:
    name: str
    about: str
    env: dict[str, str] = field(default_factory=dict)
    # With more worker processes (concurrency 1 each): the queues of each, the first's first;
    # None: one worker for all.
    queues: tuple[str, ...] | None = None
    nice: tuple[int, ...] | None = None  # SEQSERVE_WORKER_NICE of each of those processes


NO_STEP = {"SEQSERVE_BATCH_STEP_ON_CHUNK_END": "false"}
VARIANTS = {variant.name: variant for variant in (
    Variant("off", "the batch settings of the 2026-12-02 17:42 A/B off (as main before it)", OFF | NO_STEP),
    Variant("main", "as main on 2026-12-03: one worker process for every queue (no step on a chunk's end there)"),
    Variant("maint", "a second worker process for the maintenance queue only; steps on beat's ticks", NO_STEP,
            queues=(ALL_INFERENCE, "maintenance")),
    Variant("maint+step", "a second worker process for the maintenance queue; a chunk's end queues a driver step",
            queues=(ALL_INFERENCE, "maintenance")),
    Variant("split+step", "a chunk's end queues a driver step; a second worker process for interactive work and "
            "maintenance", queues=(ALL_INFERENCE, "inference.high,inference.normal,maintenance")),
    Variant("lanes+nice", "lanes, with the worker that runs the corpus and the maintenance worker at niceness 10",
            queues=(ALL_INFERENCE, "inference.high,inference.normal", "maintenance"), nice=(10, 0, 10)),
    Variant("lanes+nice+behind", "lanes+nice with each pass's results written behind, while the next pass is "
            "claimed and computed (SEQSERVE_WORKER_WRITE_BEHIND, as deploy/k8s/worker.yaml)",
            {"SEQSERVE_WORKER_WRITE_BEHIND": "true"},
            queues=(ALL_INFERENCE, "inference.high,inference.normal", "maintenance"), nice=(10, 0, 10)),
    Variant("lanes+nice+2", "lanes+nice with two corpus worker processes (compose's --scale worker=2): a batch's "
            "chunks run on both cores", queues=(ALL_INFERENCE, ALL_INFERENCE, "inference.high,inference.normal",
                                               "maintenance"), nice=(10, 10, 0, 10)),
    Variant("lanes+nice+2m", "lanes+nice+2 with the maintenance worker (validation, output files) at niceness 0, "
            "ahead of the two corpus workers", queues=(ALL_INFERENCE, ALL_INFERENCE, "inference.high,inference.normal",
                                                      "maintenance"), nice=(10, 10, 0, 0)),
    Variant("lanes", "a chunk's end queues a driver step; a worker process for interactive work only, beside "
            "one for every inference queue and one for maintenance",
            queues=(ALL_INFERENCE, "inference.high,inference.normal", "maintenance")),
)}


def _chunking(value: str) -> tuple[int, int | None]:
    """`N` or `N/PASS` (argparse type of --chunk-inputs)."""
    chunk, _, limit = value.partition("/")
    try:
        sizes = int(chunk), int(limit) if limit else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: want N or N/PASS, whole numbers") from None
    if min(size for size in sizes if size is not None) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: sizes must be >= 1")
    return sizes


def _with_chunking(variant: Variant, kind: str, chunking: tuple[int, int | None] | None) -> Variant:
    """The variant with the batch's chunks of N inputs and, given PASS, the kind's passes of at
    most PASS inputs (the claim gathers chunks of one batch up to the kind's batch limit, so
    smaller chunks alone do not make smaller passes)."""
    if chunking is None:
        return variant
    chunk, limit = chunking
    env = {"SEQSERVE_BATCH_CHUNK_INPUTS": json.dumps({kind: chunk})}
    if limit is not None:
        env["SEQSERVE_BATCH_MAX_INPUTS"] = json.dumps({kind: limit})
    name = f"{variant.name}, chunk {chunk}" + (f", pass {limit}" if limit is not None else "")
    return replace(variant, name=name, env=variant.env | env)


@dataclass
class BatchRun:
    kind: str
    inputs: int
    seconds: float  # upload start -> output file downloaded
    inputs_per_second: float
    probe_p99_idle_ms: float
    probe_p99_busy_ms: float
    in_process_per_second: float = 0.0  # the mean of the rates right before and after this run
    ratio: float = 0.0
    rss_mb: dict[str, dict[str, float]] = field(default_factory=dict)  # "10%"/"90%" -> api, worker
    chunks: dict[str, float] = field(default_factory=dict)  # from the job rows: _chunk_timings
    # Where the batch's seconds went, in order: upload (client), created -> first chunk started
    # (validation's first step, or all of it before 2026-12-07), first chunk started -> last
    # ended, last chunk ended -> completed (finalizing), completed -> output downloaded (the
    # download, then what is left: the client's poll). Beside them, not in the sum:
    # validating_s, created -> in_progress, which chunks overlap since 2026-12-07.
    phases: dict[str, float] = field(default_factory=dict)
    # The busy probe's slowest jobs: (seconds after the upload began, latency ms, queued ms, run
    # ms), slowest first.
    probe_slowest: list[tuple[float, float, float, float]] = field(default_factory=list)
    # CPU seconds each service spent from the upload to the output's download: the api, each
    # worker process with its pool children ("worker" runs the corpus), beat, and Postgres.
    cpu_s: dict[str, float] = field(default_factory=dict)
    # The probe's p99 queued ms and run ms, each on its own: idle queued, idle run, busy queued, busy run.
    probe_parts_p99: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    variant: str = "new"
    in_process_before_after: tuple[float, float] = (0.0, 0.0)
    in_process_batch: int = 0  # inputs per in-process call: the batch's pass size (_pass_inputs)

    def with_in_process(self, before: float, after: float) -> None:
        self.in_process_before_after = (round(before, 1), round(after, 1))
        self.in_process_per_second = round((before + after) / 2, 1)
        self.ratio = round(self.inputs_per_second / self.in_process_per_second, 3)


# Between one chunk's end and the next one's start (in start order): `starved` while no chunk was
# queued yet (the driver had not topped the batch up), `between` once one was (the worker's own
# time outside chunk passes: result writes, claims, driver steps, the probe's jobs).
# Also the gaps one by one: their median, 90th percentile and largest (ms), to tell a steady
# per-pass cost from a few long stalls.
_GAPS = """
WITH c AS (SELECT j.finished_at, lead(j.started_at) OVER w AS next_start, lead(j.created_at) OVER w AS next_created
           FROM jobs j WHERE j.batch_id = :id WINDOW w AS (ORDER BY j.started_at)),
g AS (SELECT finished_at, next_start, next_created,
             1000 * extract(epoch FROM GREATEST(next_start - finished_at, interval '0')) AS ms
      FROM c WHERE next_start IS NOT NULL)
SELECT extract(epoch FROM sum(GREATEST(LEAST(next_created, next_start) - finished_at, interval '0'))),
       extract(epoch FROM sum(GREATEST(next_start - GREATEST(finished_at, next_created), interval '0'))),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.9) WITHIN GROUP (ORDER BY ms), max(ms)
FROM g"""
_PHASES = """
SELECT extract(epoch FROM b.in_progress_at - b.created_at), extract(epoch FROM min(j.started_at) - b.created_at),
       extract(epoch FROM max(j.finished_at) - min(j.started_at)), extract(epoch FROM b.completed_at - max(j.finished_at))
FROM batches b JOIN jobs j ON j.batch_id = b.id WHERE b.id = :id GROUP BY b.id"""
# The passes that ran the chunks: one claim stamps every job it takes with one started_at, and the
# claim gathers a batch's chunks up to the kind's batch limit (two 64-input chunks: one pass).
_PASSES = """
SELECT count(*), extract(epoch FROM sum(finished - started_at))
FROM (SELECT started_at, max(finished_at) AS finished FROM jobs WHERE batch_id = :id GROUP BY started_at) p"""


def _chunk_timings(url: str, batch_id: str) -> dict[str, float]:
    """Where a batch's time went, from its job rows: the passes that ran its chunks and the
    worker's busy seconds in them, a chunk's mean wait from insert to start, the finalize lag
    (last chunk ended -> batch completed), and the gaps between chunks (`_GAPS`; with one
    inference process)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT count(*), extract(epoch FROM avg(j.started_at - j.created_at)),"
                " extract(epoch FROM max(b.completed_at) - max(j.finished_at)),"
                " extract(epoch FROM max(j.finished_at) - min(j.created_at))"
                " FROM jobs j JOIN batches b ON b.id = j.batch_id WHERE j.batch_id = :id"), {"id": batch_id}).one()
            passes = conn.execute(text(_PASSES), {"id": batch_id}).one()
            gaps = conn.execute(text(_GAPS), {"id": batch_id}).one()
            phases = conn.execute(text(_PHASES), {"id": batch_id}).one()
    finally:
        engine.dispose()
    names = ("chunks", "mean_wait_s", "finalize_lag_s", "first_insert_to_last_end_s", "passes", "busy_s", "starved_s",
             "between_s", "gap_p50_ms", "gap_p90_ms", "gap_max_ms", "validating_s", "created_to_first_chunk_s", "chunks_s",
             "finalizing_s")
    return {name: round(float(value or 0), 3)
            for name, value in zip(names, (*row, *passes, *gaps, *phases), strict=True)}


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
    """The whole corpus in file order, as the batch reads it: the in-process rate runs the
    inputs the batch runs, in the same chunks. Until 2026-12-06 it ran the first 2,000 only,
    and EWT's first 2,000 sentences average 19.9 tokens against the corpus's 15.3: tag's
    in-process rate was understated by about a fifth, its ratios overstated."""
    if kind == "classify":
        return content.decode().splitlines()
    sentences = content.decode().split("\n\n")
    return [[line.split("\t")[1] for line in block.splitlines() if line and line.split("\t")[0].isdigit()]
            for block in sentences if block.strip()]


def _pass_inputs(kind: str, chunking: tuple[int, int | None] | None) -> int:
    """Inputs per forward pass the batch's chunks make: a chunk at or over the kind's batch
    limit runs alone, smaller ones are gathered up to the limit. The in-process rate is
    measured at this size (larger passes sort more inputs by length and pad less)."""
    settings = get_settings()
    chunk = settings.batch_chunk_inputs[kind] if chunking is None else chunking[0]
    limit = settings.batch_max_inputs[kind] if chunking is None or chunking[1] is None else chunking[1]
    return chunk if chunk >= limit else (limit // chunk) * chunk


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(procs: dict[str, Any]) -> dict[str, float]:
    """CPU seconds (user + system) so far of every process in each service's session (a worker
    and its pool children), and of every Postgres process, which serve this stack alone here."""
    sessions = {process.pid: name for name, process in procs.items()}
    totals = dict.fromkeys([*procs, "postgres"], 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            comm, fields = text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()
            name = sessions.get(int(fields[3]), "postgres" if comm.startswith("postgres") else None)
            if name is not None:
                totals[name] += (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            continue
    return totals


class Probe(threading.Thread):
    """Single-input classify jobs, one after another, each waited for; latencies in ms."""

    def __init__(self, base: str, model: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.model, self.headers = base, model, headers
        self.latencies: list[float] = []
        self.sent_at: list[float] = []  # perf_counter at each latency's submission
        # The job's own timings, ms: queued (row committed -> claimed) and run (claimed -> result
        # committed); the rest of a latency is the API's side (request, commit, wake-up, answer).
        self.parts: list[tuple[float, float]] = []
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
                    timings = response.json()["timings"]
                    self.parts.append((1000 * (timings["queue_seconds"] or 0), 1000 * (timings["run_seconds"] or 0)))
                time.sleep(0.2)


def _quantile(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100)[q - 1], 1) if len(values) >= 2 else float("nan")


def _p99(values: list[float]) -> float:
    return _quantile(values, 99)


def _idle_probe(base: str, model: str, headers: dict[str, str], seconds: float) -> Probe:
    def warm() -> None:
        httpx.post(f"{base}/v1/jobs", headers=headers | {"Prefer": "wait=60"}, timeout=90,
                   json={"kind": "classify", "model": model, "inputs": ["warm up"]})

    # Warm: a worker loads the model on its first job (a first load is ~1 s, not idle latency).
    # Then a probe of its own, not counted, one job at a time, so that every inference worker
    # of a layout with several gets some: jobs of one group sent together run in one pass on one
    # worker, and the other stayed cold (its first job's load was the idle p99, a run of
    # 110-180 ms, in the 2026-12-04 19:25 runs).
    for _ in range(3):
        warm()
    unwarmed = Probe(base, model, headers)
    unwarmed.start()
    time.sleep(5)
    unwarmed.stop.set()
    unwarmed.join()
    probe = Probe(base, model, headers)
    probe.start()
    time.sleep(seconds)
    probe.stop.set()
    probe.join()
    return probe


def _p99_parts(probe: Probe) -> tuple[float, float]:
    """The p99 of the probe's queued and run ms, each on its own."""
    return _p99([queued for queued, _ in probe.parts]), _p99([run for _, run in probe.parts])


def run_batch(base: str, procs: dict[str, Any], kind: str, model: str, probe_model: str, headers: dict[str, str],
              content: tuple[str, bytes, int], idle: Probe, url: str) -> tuple[BatchRun, Probe]:
    """One batch, upload to output, with a probe's interactive jobs beside it (returned too)."""
    name, data, count = content
    probe = Probe(base, probe_model, headers)
    cpu_before = _cpu_seconds(procs)
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
        file_id = client.post("/v1/files", files={"file": (name, data)}).json()["id"]
        uploaded = time.perf_counter()
        batch = client.post("/v1/batches", json={"kind": kind, "model": model, "input_file": file_id}).json()
        probe.start()
        rss: dict[str, dict[str, float]] = {}
        held = True
        while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            if not held:
                time.sleep(0.2)
            # A look every 0.2 s, held by the server (Prefer: wait) and answered when the batch
            # ends, as the client's wait does; a server that does not hold it is polled instead.
            response = client.get(f"/v1/batches/{batch['id']}", headers={"Prefer": "wait=0.2"})
            batch, held = response.json(), "Preference-Applied" in response.headers
            polled = time.perf_counter()
            done = batch["request_counts"]["completed"] / max(1, count)
            for mark, fraction in (("10%", 0.1), ("90%", 0.9)):
                if mark not in rss and done >= fraction:
                    rss[mark] = {"api": _rss_mb(procs["api"].pid),
                                 "worker": round(sum(_rss_mb(p.pid) for name, p in procs.items() if "worker" in name), 1)}
        output = client.get(f"/v1/batches/{batch['id']}/output").content
    elapsed = time.perf_counter() - started
    downloaded = time.perf_counter() - polled
    cpu = {name: round(seconds - cpu_before.get(name, 0.0), 2) for name, seconds in _cpu_seconds(procs).items()}
    probe.stop.set()
    probe.join()
    assert batch["status"] == "completed", batch
    assert output.count(b"\n") == count, (output.count(b"\n"), count)
    chunks = _chunk_timings(url, batch["id"])
    phases = {"upload_s": uploaded - started, **{name: chunks[name] for name in (
        "created_to_first_chunk_s", "chunks_s", "finalizing_s")}, "download_s": downloaded}
    phases["poll_s"] = elapsed - sum(phases.values())  # completed -> seen by the client's look
    phases["validating_s"] = chunks["validating_s"]
    return BatchRun(kind, count, round(elapsed, 1), round(count / elapsed, 1), _p99(idle.latencies),
                    _p99(probe.latencies), rss_mb=rss, chunks=chunks,
                    phases={name: round(value, 3) for name, value in phases.items()},
                    probe_slowest=_slowest(probe, started), cpu_s=cpu,
                    probe_parts_p99=(*_p99_parts(idle), *_p99_parts(probe))), probe


@dataclass
class Pooled:
    """A variant's repeats on one stack: the median run, and the probe's p99 over every busy
    sample of them (one 4-7 s batch holds ~20 samples: its p99 is its slowest, one stall)."""

    variant: str
    kind: str
    repeats: int
    seconds: list[float]
    ratios: list[float]
    median_ratio: float
    probe_samples_idle: int
    probe_samples_busy: int
    probe_p99_idle_ms: float
    probe_p99_busy_ms: float
    probe_p95_idle_ms: float
    probe_p95_busy_ms: float


def pooled(runs: list[BatchRun], idle: Probe, busy: list[float]) -> Pooled:
    return Pooled(runs[0].variant, runs[0].kind, len(runs), [run.seconds for run in runs], [run.ratio for run in runs],
                  round(statistics.median(run.ratio for run in runs), 3), len(idle.latencies), len(busy),
                  _quantile(idle.latencies, 99), _quantile(busy, 99), _quantile(idle.latencies, 95),
                  _quantile(busy, 95))


@contextlib.contextmanager
def _stack(env: dict[str, str], logs: Path, variant: Variant) -> Iterator[tuple[str, dict[str, Any]]]:
    """The api, one worker process (concurrency 1) and beat, plus the variant's other workers."""
    nice = variant.nice or (0,) * len(variant.queues or (None,))
    first = {"SEQSERVE_WORKER_QUEUES": variant.queues[0], "SEQSERVE_WORKER_NICE": str(nice[0])} if variant.queues else {}
    with processes.running_processes(env | first, logs, ["worker", "--concurrency", "1"], ["beat"]) as (base, procs):
        if variant.queues is None:
            yield base, procs
            return
        others = {f"worker-{number}": processes.start(
            ["worker", "--concurrency", "1", "--hostname", f"w{number}@%h"],
            env | {"SEQSERVE_WORKER_QUEUES": queues, "SEQSERVE_WORKER_NICE": str(nice[number - 1])},
            logs / f"worker-{number}.log")
            for number, queues in enumerate(variant.queues[1:], start=2)}
        try:
            yield base, procs | others
        finally:
            for process in others.values():
                processes.stop(process)


def _slowest(probe: Probe, since: float, count: int = 3) -> list[tuple[float, float, float, float]]:
    rows = sorted(zip(probe.sent_at, probe.latencies, probe.parts, strict=True), key=lambda row: -row[1])[:count]
    return [(round(at - since, 1), round(ms, 1), round(queued, 1), round(run, 1)) for at, ms, (queued, run) in rows]


def report(runs: list[BatchRun], pools: list[Pooled], args: argparse.Namespace) -> str:
    lines = ["# Corpus batches", "", f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
             f"{cpu_machine()}; one inference worker (concurrency 1), one API process, beat; `--limit {args.limit}`. "
             "Machine shared with other sessions' work: treat the numbers as a floor. In-process rates on the "
             f"`{get_settings().inference_backend}` backend, as the stack's workers.", "",
             "| variant | kind | inputs | seconds | inputs/s | in-process/s (before, after; batch) | ratio | "
             "probe p99 idle / busy (ms) | probe p99 queued, run: idle / busy (ms) | "
             "probe's slowest (s after upload: ms (queued, run ms)) | RSS at 10% / 90% (MB) | "
             "chunks: n, passes, busy s, mean wait s, finalize lag s, starved s, between s, gap p50/p90/max ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        rss = " / ".join(f"api {m['api']} worker {m['worker']}" for m in run.rss_mb.values())
        chunks = ", ".join(str(run.chunks.get(name, "-")) for name in ("chunks", "passes", "busy_s", "mean_wait_s",
                                                                         "finalize_lag_s", "starved_s", "between_s",
                                                                         "gap_p50_ms", "gap_p90_ms", "gap_max_ms"))
        before, after = run.in_process_before_after
        idle_q, idle_r, busy_q, busy_r = run.probe_parts_p99
        slowest = ", ".join(f"{at}: {ms:.0f} (q {queued:.0f}, r {ran:.0f})" for at, ms, queued, ran in run.probe_slowest)
        lines.append(f"| {run.variant} | {run.kind} | {run.inputs} | {run.seconds} | {run.inputs_per_second} | "
                     f"{run.in_process_per_second} ({before}, {after}; {run.in_process_batch}) | {run.ratio} | "
                     f"{run.probe_p99_idle_ms} / {run.probe_p99_busy_ms} | {idle_q}, {idle_r} / {busy_q}, {busy_r} | "
                     f"{slowest} | {rss} | {chunks} |")
    lines += ["", f"Pooled over each stack's {args.repeats} batch(es):", "",
              "| variant | kind | seconds | ratios (median) | probe samples idle / busy | probe p95 idle / busy (ms) | "
              "probe p99 idle / busy (ms) | p99 busy / idle |", "|---|---|---|---|---|---|---|---|"]
    for pool in pools:
        lines.append(f"| {pool.variant} | {pool.kind} | {' / '.join(map(str, pool.seconds))} | "
                     f"{' / '.join(map(str, pool.ratios))} ({pool.median_ratio}) | {pool.probe_samples_idle} / "
                     f"{pool.probe_samples_busy} | {pool.probe_p95_idle_ms} / {pool.probe_p95_busy_ms} | "
                     f"{pool.probe_p99_idle_ms} / {pool.probe_p99_busy_ms} | "
                     f"{round(pool.probe_p99_busy_ms / pool.probe_p99_idle_ms, 2)}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["tag", "classify"], choices=["tag", "classify"])
    parser.add_argument("--limit", type=int, default=None, help="first N inputs of each corpus")
    parser.add_argument("--seconds", type=float, default=10.0, help="in-process measurement time")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="idle probe time (~4.5 probes/s: 10 s gives a p99 of ~45 samples, too few)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="batches per stack, one after another (the idle probe runs once, before them); the "
                        "probe's p99 is pooled over them")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--variants", nargs="+", default=["main"], choices=list(VARIANTS),
                        help="stacks to run each kind on, one after another: " + "; ".join(
                            f"{name}: {variant.about}" for name, variant in VARIANTS.items()))
    parser.add_argument("--checkpoint", action="append", default=[], metavar="TASK=PATH",
                        help="use this checkpoint for the task instead of training the quick preset")
    parser.add_argument("--chunk-inputs", nargs="+", default=[], type=_chunking, metavar="N[/PASS]",
                        help="run each variant again (after its default) with the batch's chunks of N inputs and, "
                        "with /PASS, passes of at most PASS inputs of the batch's kind; the in-process rate is "
                        "measured at the pass size these make")
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
        runs, pools = [], []
        # The in-process rate on the backend the stack's workers serve with (`auto`: ONNX Runtime
        # for tag and classify). Until 2026-12-04 it was torch's, a slower path than the served
        # one, so the ratios before that are high (docs/benchmarks/batches.md).
        backend = get_settings().inference_backend
        for kind in args.kinds:
            content = _corpus(kind, args.limit)
            texts = _texts(content[1], kind)
            chosen = [(_with_chunking(VARIANTS[name], kind, chunking), _pass_inputs(kind, chunking))
                      for name in args.variants for chunking in (None, *args.chunk_inputs)]
            for number, (variant, chunk) in enumerate(chosen):
                logs = workdir / "logs" / f"{kind}-{number}"
                logs.mkdir()
                # The in-process rate right before and right after this variant's stack ran, so
                # that each ratio sees the machine's load of its own minutes (the mean of both).
                before = in_process_limit(kind, checkpoints[kind], texts, chunk, args.seconds,
                                          backend).sentences_per_second
                with _stack(env | variant.env, logs, variant) as (base, procs):
                    idle = _idle_probe(base, "bench-classify", headers, args.idle_seconds)
                    done = [run_batch(base, procs, kind, f"bench-{kind}", "bench-classify", headers, content, idle,
                                      url) for _ in range(args.repeats)]
                after = in_process_limit(kind, checkpoints[kind], texts, chunk, args.seconds,
                                         backend).sentences_per_second
                for run, _ in done:
                    run.with_in_process(before, after)
                    run.variant, run.in_process_batch = variant.name, chunk
                    print(json.dumps(asdict(run)), flush=True)
                    runs.append(run)
                pool = pooled([run for run, _ in done], idle, [ms for _, probe in done for ms in probe.latencies])
                print(json.dumps(asdict(pool)), flush=True)
                pools.append(pool)
        text = report(runs, pools, args)
        print(text)
        if args.out:
            args.out.write_text(text)
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
