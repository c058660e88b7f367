"""The serving benchmark's load generator, run as its own lean process (no torch, a small
heap): it shares the machine with the stack it measures, so it must cost little CPU and never
stall on its own garbage collection. `bench.serving_bench` starts one per measured point:

    python -m bench.load --base URL --kind classify --model M --data-dir D closed --per-job 1 --concurrency 8
    python -m bench.load ... open --rate 150 --warmup 2 --runs 3

Before each measured run it prints `ready` and waits for a line on stdin (the caller reads the
stack's CPU counters meanwhile); after it, one JSON line with the run's numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Load:
    """One measured run (`bench.serving_bench.Result` adds the stack's side)."""

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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]



def sample_inputs(kind: str, data_dir: Path) -> list[str]:
    """Real sentences from the dev sets, as users would send them."""
    if kind in ("classify", "tag", "score", "generate"):
        lines = (data_dir / "sst2" / "glue" / "dev.tsv").read_text().splitlines()[1:]
        return [line.split("\t")[0].strip() for line in lines]
    import gzip

    with gzip.open(data_dir / "multi30k_en_de" / "tok" / "val.lc.norm.tok.en.gz", "rt") as handle:
        return [line.strip() for line in handle if line.strip()]



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
            try:
                self.writer.write(request)
                status_line = await self.reader.readline()
            except (ConnectionResetError, BrokenPipeError):
                if fresh or attempt == 2:
                    raise
                status_line = b""  # reset before any answer: the same as a close, below
            if status_line or fresh or attempt == 2:
                break
            # The server closed an idle keep-alive connection (a close or a reset, before any
            # byte of an answer: it never read this request): send again on a new one.
            self.close()
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
        status, job = await conn.post("/v1/jobs", body, {"Prefer": "wait=60", **_auth()})
    except (OSError, asyncio.IncompleteReadError, ValueError):
        conn.close()
        return False
    return status == 200 and job.get("status") == "succeeded"


async def closed_loop(base: str, kind: str, model: str, texts: list[str], per_job: int, concurrency: int,
                      seconds: float, mode: str) -> Load:
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
                    idle: list[Connection] | None = None, keep_open: bool = False) -> Load:
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
              failed: int) -> Load:
    jobs = len(latencies)
    ms = [x * 1000 for x in latencies] or [float("nan")]
    return Load(kind, mode, per_job, concurrency, jobs, elapsed, jobs / elapsed, jobs * per_job / elapsed,
                  round(statistics.median(ms), 2), round(percentile(ms, 95), 2), round(percentile(ms, 99), 2), failed)


def _measure_when_told(run: Any) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(asdict(run())), flush=True)


def _auth() -> dict[str, str]:
    """The API key to send: SEQSERVE_API_KEY (e.g. `$(cat var/admin.key)`), none when unset."""
    key = os.environ.get("SEQSERVE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10)
    modes = parser.add_subparsers(dest="load", required=True)
    closed = modes.add_parser("closed", help="clients that each send the next job when the answer arrives")
    closed.add_argument("--per-job", type=int, default=1)
    closed.add_argument("--concurrency", type=int, default=1)
    closed.add_argument("--label", default="seqserve")
    opened = modes.add_parser("open", help="single-input jobs at a fixed rate, whatever the answers")
    opened.add_argument("--rate", type=float, required=True)
    opened.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first, on the same connections")
    opened.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    texts = sample_inputs(args.kind, args.data_dir)
    if args.load == "closed":
        _measure_when_told(lambda: asyncio.run(closed_loop(
            args.base, args.kind, args.model, texts, args.per_job, args.concurrency, args.seconds, args.label)))
        return

    async def open_runs() -> None:
        # The warm-up opens the keep-alive connections a steady stream needs (at first every
        # request opens one), as a long-running client has.
        connections: list[Connection] = []
        await open_loop(args.base, args.kind, args.model, texts, args.rate, args.warmup, connections, keep_open=True)
        loop = asyncio.get_running_loop()
        for _ in range(args.runs):
            print("ready", flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)
            result = await open_loop(args.base, args.kind, args.model, texts, args.rate, args.seconds, connections,
                                     keep_open=True)
            print(json.dumps(asdict(result)), flush=True)
        for conn in connections:
            conn.close()

    asyncio.run(open_runs())


if __name__ == "__main__":
    main()
