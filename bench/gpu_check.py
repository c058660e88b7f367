"""The GPU run, prepared: one command, under 8 minutes on a one-GPU machine, one table.

Steps (each with its own time limit, so one stuck step cannot eat the others' time):
  cuda-tests  pytest tests/gpu: every kind's inference on CUDA, a training run of every task on
              CUDA, checkpoints trained on one device served on the other (one row per test)
  serving     bench.serving_bench for classify and translate with a CUDA worker (short runs;
              needs Postgres and Redis as for the tests, else the row says so)
  epoch       a full-preset training epoch per task on CUDA, time-bounded: one epoch over a
              slice of the training set, scaled to the whole set (the row shows both)

    bench/gpu_check.sh              # everything
    bench/gpu_check.sh --dry-run    # the plan, as the same table, nothing run
    bench/gpu_check.sh --steps cuda-tests epoch --out var/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SEQSERVE_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets"))
STEPS = ("cuda-tests", "serving", "epoch")
# Seconds per step: 150 + 150 + 4 x 30 = 420 s, under the 8 minutes with start-up to spare.
LIMITS = {"cuda-tests": 150, "serving": 150, "epoch": 30}
# Full-preset epoch, bounded: the slice trained (examples, or tokens for the language model)
# and the full training set's size it is scaled to (SST-2 GLUE, EWT, PTB, Multi30k train).
EPOCH_SLICES: dict[str, tuple[str, int, int]] = {
    "classify": ("max_train_examples", 8000, 67349),
    "tag": ("max_train_examples", 2000, 12544),
    "generate": ("max_train_tokens", 150_000, 929_589),
    "translate": ("max_train_examples", 3000, 29000),
}


@dataclass
class Row:
    step: str
    item: str
    status: str  # passed, failed, skipped, planned, timeout
    seconds: float | None = None
    detail: str = ""


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table, columns padded to their widest cell."""
    header = ("step", "item", "status", "seconds", "detail")
    cells = [header] + [(r.step, r.item, r.status, "" if r.seconds is None else f"{r.seconds:.1f}", r.detail)
                        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--dry-run", action="store_true", help="print the plan as the table; run nothing")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step's time limit")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be > 0")
    return args


def _run(command: list[str], limit: float, env: dict[str, str] | None = None) -> tuple[int | None, str, float]:
    """(exit code or None on timeout, the output's tail, seconds)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=limit,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout if isinstance(expired.stdout, str) else ""
        return None, output[-300:], time.perf_counter() - started
    return done.returncode, (done.stdout + done.stderr)[-300:], time.perf_counter() - started


def cuda_tests(limit: float) -> list[Row]:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "junit.xml"
        code, tail, seconds = _run([sys.executable, "-m", "pytest", "tests/gpu", "-q", "-p", "no:randomly",
                                    f"--junitxml={report}"], limit)
        if code is None or not report.exists():
            status = "timeout" if code is None else "failed"
            return [Row("cuda-tests", "tests/gpu", status, seconds, tail.strip().splitlines()[-1:][0] if tail else "")]
        rows = []
        for case in ET.parse(report).iter("testcase"):
            outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
            status = {"failure": "failed", "error": "failed"}.get(outcome, outcome)
            message = next((child.get("message", "") for child in case if child.tag != "system-out"), "")
            rows.append(Row("cuda-tests", case.get("name", "?"), status, float(case.get("time", 0)), message[:80]))
        return rows


def serving(limit: float) -> list[Row]:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "serving.json"
        command = [sys.executable, "-m", "bench.serving_bench", "--kinds", "classify", "translate", "--device", "cuda",
                   "--seconds", "4", "--concurrency", "1", "16", "--p99-runs", "1", "--out", str(out)]
        code, tail, seconds = _run(command, limit)
        if code != 0 or not out.exists():
            status = "timeout" if code is None else "failed"
            return [Row("serving", "classify, translate", status, seconds, tail.strip().replace("\n", " ")[-120:])]
        results = json.loads(out.read_text())["results"]
    rows = []
    for r in results:
        item = f"{r['kind']} {r['mode']} x{r['inputs_per_job']} c{r.get('concurrency', '')}"
        detail = f"{r.get('jobs_per_second', 0):.1f} jobs/s, {r.get('inputs_per_second', 0):.0f} inputs/s"
        rows.append(Row("serving", item, "passed", None, detail))
    return rows


def epoch(task: str, limit: float, device: str = "cuda", size: int | None = None) -> Row:
    key, default_size, full = EPOCH_SLICES[task]
    size = size or default_size
    code = (
        "import json, sys, time, torch\n"
        "from pathlib import Path\n"
        "from seqserve.shared import tasks\n"
        f"train = tasks.load(tasks.TASKS[{task!r}].trainer)\n"
        "started = time.perf_counter()\n"
        f"train(data_dir=Path({str(DATA_DIR)!r}), out_path=Path(sys.argv[1]) / 'model.pt', preset='full',\n"
        f"      overrides={{{key!r}: {size}, 'epochs': 1, 'time_budget_minutes': 0.0}},\n"
        f"      device=torch.device({device!r}), progress=False)\n"
        "print(json.dumps({'seconds': time.perf_counter() - started}))\n"
    )
    with tempfile.TemporaryDirectory() as scratch:
        status, tail, seconds = _run([sys.executable, "-c", code, scratch], limit)
    if status != 0:
        return Row("epoch", f"{task} full", "timeout" if status is None else "failed", seconds, tail.strip()[-100:])
    trained = json.loads(tail.strip().splitlines()[-1])["seconds"]
    scaled = trained * full / size
    return Row("epoch", f"{task} full", "passed", trained, f"{size} of {full} ({key}); full epoch ~{scaled:.0f} s")


def plan(steps: Sequence[str], scale: float) -> list[Row]:
    rows = []
    for step in steps:
        items = list(EPOCH_SLICES) if step == "epoch" else ["tests/gpu" if step == "cuda-tests" else "classify, translate"]
        rows += [Row(step, item, "planned", LIMITS[step] * scale, "time limit") for item in items]
    return rows


def run_steps(steps: Sequence[str], scale: float) -> list[Row]:
    actions: dict[str, Callable[[], list[Row]]] = {
        "cuda-tests": lambda: cuda_tests(LIMITS["cuda-tests"] * scale),
        "serving": lambda: serving(LIMITS["serving"] * scale),
        "epoch": lambda: [epoch(task, LIMITS["epoch"] * scale) for task in EPOCH_SLICES],
    }
    rows: list[Row] = []
    for step in steps:
        rows += actions[step]()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = plan(args.steps, args.scale) if args.dry_run else run_steps(args.steps, args.scale)
    print(format_table(rows))
    if args.out is not None:
        payload: dict[str, Any] = {"dry_run": args.dry_run, "rows": [asdict(r) for r in rows]}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
    return 1 if any(r.status in ("failed", "timeout") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
