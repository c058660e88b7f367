"""The platform's cost per job (issue 18): single-input classify through the real stack (API,
one worker), sync with `Prefer: wait`, closed loop, old path against new, interleaved in one
run on one machine, with the CPU every process spent per job:

    .venv/bin/python -m bench.cost_per_job --checkpoint /path/model.pt --rounds 2

Variants are settings of the same code (`main`: group commit off, i.e. the path before group
commit; `new`: the defaults), or, with `--ref REF`, `ref`: the defaults of another commit's
code (a `git archive` of REF put first on the stack's PYTHONPATH), for a one-run A/B of a
branch against main: `--ref main --variants ref-main ref new` (`ref-main`: REF with group
commit off). `--together` starts every variant's stack at once (each on a database and a Redis
database of its own) and moves the load between them each `--seconds`, alternating which goes
first: on a machine whose speed drifts (other sessions on the host), both sides of a comparison
see the same drift. Per point it prints jobs/s, p50/p99 and the CPU ms per job of the API, the
worker parent, the worker child (the pool process), Postgres (every postgres process on
the machine: other sessions' queries count too) and the load generator. `--profile DIR`
records py-spy profiles (threads holding the GIL: Python CPU, not waits) of the API and the worker
processes during the last client count.
Needs Postgres and Redis as the tests do (its own Redis database, claimed as a test run
claims one). Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.machine import cpu_machine
from bench.serving_bench import (
    DATA_DIR,
    LoadProcess,
    broker_url,
    create_database,
    drop_database,
    register,
    train_quick,
)
from tests import processes
from tests.conftest import _claim_redis_db

# ref, ref-main: REF's code (--ref) with its defaults, and with group commit off (the main
# before issue 18's group commit, whose worker path REF may still have).
# main: today's main path; new: the defaults; new-solo: also the worker's solo pool (no
# parent-to-child hop between the consumer and the model); new-2api: two API processes.
VARIANTS = {"main": {"SEQSERVE_SUBMIT_GROUP_COMMIT": "false"}, "new": {}, "new-solo": {"SEQSERVE_WORKER_POOL": "solo"},
            "new-2api": {"SEQSERVE_API_WORKERS": "2"}, "ref": {}, "ref-main": {"SEQSERVE_SUBMIT_GROUP_COMMIT": "false"}}
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Point:
    variant: str
    round: int
    clients: int
    jobs: int
    jobs_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    failed: int
    cpu_ms_per_job: dict[str, float] = field(default_factory=dict)
    sys_ms_per_job: dict[str, float] = field(default_factory=dict)  # the kernel's part of cpu_ms_per_job


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user + system, system) CPU seconds of `pid` so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK, int(fields[12]) / _TICK  # utime, stime


def _postgres_pids() -> list[int]:
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip().startswith("postgres"):
                pids.append(int(comm.parent.name))
        except (OSError, ValueError):
            continue
    return pids


def _split(procs: dict[str, subprocess.Popen[bytes]], load: LoadProcess) -> dict[str, list[int]]:
    """Pids per part of the stack, read now (the pool process is the worker's child)."""
    worker = procs["worker"].pid
    api = [pid for pid, fields in processes._proc_stats() if int(fields[3]) == procs["api"].pid]
    return {"api": api, "worker_parent": [worker], "worker_child": processes.children(worker),
            "postgres": _postgres_pids(), "load": [load.proc.pid]}


def _sample(parts: dict[str, list[int]]) -> dict[str, dict[int, tuple[float, float]]]:
    return {name: {pid: _cpu_seconds(pid) for pid in pids} for name, pids in parts.items()}


def _spent(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]], part: int = 0) -> float:
    """CPU seconds (part 0: all, 1: the kernel's) of the processes alive at both ends (a
    Postgres backend that exited reads 0)."""
    return sum(max(0.0, after[pid][part] - before[pid][part]) for pid in before if pid in after and after[pid][0] > 0)


def _profile(pids: dict[str, int], seconds: float, folder: Path) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                              "--format", "raw", "--output", str(folder / f"{name}.txt"), "--nonblocking", "--gil"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in pids.items()]


def ref_code(ref: str, workdir: Path) -> dict[str, str]:
    """The environment that runs REF's code: its tree unpacked as the `seqserve` package
    (the editable install maps `seqserve.services` and `.shared` to the repository root, migrations
    beside them; PYTHONPATH comes first)."""
    root = workdir / "ref"
    package = root / "seqserve"
    package.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=processes.REPO_ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(package)], input=archive, check=True)
    return {"PYTHONPATH": str(root)}


def _ref_database(ref_env: dict[str, str]) -> str:
    """A database migrated by REF's code (its head revision may be older than this tree's)."""
    url = create_database(migrate=False)
    subprocess.run([sys.executable, "-c", "import sys; from seqserve.shared.db.migrate import upgrade; "
                    "upgrade(sys.argv[1])", url], env=os.environ | ref_env, check=True)
    return url


@contextlib.contextmanager
def _stack(variant: str, env: dict[str, str], args: argparse.Namespace, logs: Path
           ) -> Iterator[tuple[str, dict[str, subprocess.Popen[bytes]]]]:
    """One variant's API and worker on `env`'s database and Redis database, warmed up."""
    import redis

    redis.Redis.from_url(env["SEQSERVE_BROKER_URL"]).flushdb()
    logs.mkdir(parents=True, exist_ok=True)
    extra = args.ref_env if variant.startswith("ref") else {}
    with processes.running_processes(env | VARIANTS[variant] | extra, logs,
                                     ["worker", "--concurrency", "1"]) as (base, procs):
        os.environ["SEQSERVE_API_KEY"] = env["SEQSERVE_API_KEY"]
        warm = LoadProcess(base, "classify", "bench-classify", ["closed", "--concurrency", "4"], 4)
        warm.measure(procs)
        warm.close()
        yield base, procs


def _measure(variant: str, rnd: int, clients: int, base: str, procs: dict[str, subprocess.Popen[bytes]],
             args: argparse.Namespace, key: str) -> Point:
    os.environ["SEQSERVE_API_KEY"] = key  # the load generator's (each stack's database has its own)
    load = LoadProcess(base, "classify", "bench-classify", ["closed", "--concurrency", str(clients)], args.seconds)
    assert load.proc.stdout is not None and load.proc.stdin is not None
    if load.proc.stdout.readline().strip() != "ready":
        raise RuntimeError("bench.load did not start")
    parts = _split(procs, load)
    spies = []
    if args.profile and clients == args.clients[-1] and rnd == 0:
        targets = {"api": max(parts["api"]), "worker_parent": procs["worker"].pid}  # newest: the server
        if parts["worker_child"]:  # none in the solo pool
            targets["worker_child"] = parts["worker_child"][0]
        spies = _profile(targets, args.seconds - 1, args.profile / variant)
    before = _sample(parts)
    load.proc.stdin.write("go\n")
    load.proc.stdin.flush()
    row = json.loads(load.proc.stdout.readline())
    after = _sample(parts)
    load.close()
    for spy in spies:
        spy.wait(timeout=60)
    jobs = max(row["jobs"], 1)
    cpu = {name: round(_spent(before[name], after[name]) * 1000 / jobs, 2) for name in parts}
    kernel = {name: round(_spent(before[name], after[name], 1) * 1000 / jobs, 2) for name in parts}
    point = Point(variant, rnd, clients, row["jobs"], round(row["jobs_per_second"], 1), row["p50_ms"],
                  row["p99_ms"], row["failed"], cpu, kernel)
    print(json.dumps(asdict(point)), flush=True)
    return point


def run_variant(variant: str, env: dict[str, str], rnd: int, args: argparse.Namespace, logs: Path) -> list[Point]:
    """One round of one variant: its own stack, started for it, every client count."""
    with _stack(variant, env, args, logs / f"{variant}-{rnd}") as (base, procs):
        return [_measure(variant, rnd, clients, base, procs, args, env["SEQSERVE_API_KEY"]) for clients in args.clients]


def run_together(envs: dict[str, dict[str, str]], args: argparse.Namespace, logs: Path) -> list[Point]:
    """Every variant's stack up at once (each on its own database and Redis database), the load
    moving between them each `--seconds`: a drift in the machine's speed (other sessions on
    the host) lands on both sides of a comparison instead of on one variant's round."""
    points: list[Point] = []
    with contextlib.ExitStack() as stacks:
        bases = {variant: stacks.enter_context(_stack(variant, env, args, logs / variant))
                 for variant, env in envs.items()}
        for rnd in range(args.rounds):
            order = list(envs) if rnd % 2 == 0 else list(envs)[::-1]
            for clients in args.clients:
                points += [_measure(variant, rnd, clients, *bases[variant], args, envs[variant]["SEQSERVE_API_KEY"])
                           for variant in order]
    return points


def report(points: list[Point], load: str) -> str:
    lines = [f"Machine: {cpu_machine()}; load average before/after: {load}", "",
             "| variant | clients | jobs/s (median of rounds) | p50 ms | p99 ms | failed | CPU ms/job: API | worker parent "
             "| worker child | Postgres | load gen |", "|---" * 11 + "|"]
    for variant in VARIANTS:
        for clients in sorted({p.clients for p in points}):
            rows = [p for p in points if (p.variant, p.clients) == (variant, clients)]
            if not rows:
                continue

            def med(values: list[float | None]) -> float:
                return round(statistics.median(v for v in values if v is not None), 2)

            cpu = {name: med([r.cpu_ms_per_job[name] for r in rows]) for name in rows[0].cpu_ms_per_job}
            lines.append(f"| {variant} | {clients} | {med([r.jobs_per_second for r in rows])} "
                         f"({', '.join(str(r.jobs_per_second) for r in rows)}) | {med([r.p50_ms for r in rows])} "
                         f"| {med([r.p99_ms for r in rows])} | {sum(r.failed for r in rows)} | {cpu['api']} "
                         f"| {cpu['worker_parent']} | {cpu['worker_child']} | {cpu['postgres']} | {cpu['load']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="classify checkpoint; default: train the quick preset")
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["main", "new", "new-solo"], choices=list(VARIANTS))
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw profiles here (first round)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--ref", default=None, help="the commit the `ref` variant runs (e.g. main)")
    parser.add_argument("--together", action="store_true",
                        help="every variant's stack up at once, the load alternating between them each --seconds")
    args = parser.parse_args()
    workdir = Path(f"/tmp/seqserve-cost-{os.getpid()}")
    if any(v.startswith("ref") for v in args.variants) != (args.ref is not None):
        parser.error("the `ref` variants and --ref go together")
    args.ref_env = ref_code(args.ref, workdir) if args.ref else {}
    variants = args.variants if args.together else args.variants[:1]
    # One database for all unless --together; a `ref` variant's at REF's head revision.
    urls = {variant: _ref_database(args.ref_env) if variant.startswith("ref") else create_database()
            for variant in variants}
    load_before = os.getloadavg()
    try:
        base_env = {"SEQSERVE_DATA_DIR": str(DATA_DIR), "SEQSERVE_DEVICE": "cpu", "SEQSERVE_TORCH_THREADS": "1",
                    "SEQSERVE_INFERENCE_BACKEND": "torch", "SEQSERVE_WORKER_METRICS_PORT": "0",
                    "SEQSERVE_LOG_LEVEL": "WARNING", "SEQSERVE_MAX_QUEUE_DEPTH": "1000000", "SEQSERVE_API_WORKERS": "1"}
        checkpoint = args.checkpoint or train_quick("classify", workdir)
        envs = {}
        for number, (variant, url) in enumerate(urls.items()):
            envs[variant] = base_env | {"SEQSERVE_DATABASE_URL": url, "SEQSERVE_VAR_DIR": str(workdir / f"var{number}"),
                                        "SEQSERVE_BROKER_URL": broker_url() if number == 0 else _claim_redis_db()}
            os.environ.pop("SEQSERVE_API_KEY", None)  # `register` makes a key in this variant's database
            register(envs[variant], "bench-classify", "classify", checkpoint)
            envs[variant]["SEQSERVE_API_KEY"] = os.environ["SEQSERVE_API_KEY"]  # what its load generator sends
        points: list[Point] = []
        if args.together:
            points = run_together(envs, args, workdir / "logs")
        for rnd in range(0 if args.together else args.rounds):
            order = args.variants if rnd % 2 == 0 else args.variants[::-1]  # alternate which goes first
            for variant in order:
                points += run_variant(variant, envs[variants[0]], rnd, args, workdir / "logs")
    finally:
        for url in urls.values():
            drop_database(url)
    load = f"{' '.join(f'{x:.2f}' for x in load_before)} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    table = report(points, load)
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
