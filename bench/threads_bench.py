"""What the auto thread rule (shared/threads.py) buys: one quick-preset classify epoch on a
slice of SST-2, at the thread counts the rule picks and at torch's default, on an idle machine
and beside a busy neighbour (a process spinning on one core, as a serving worker does under load).

    .venv/bin/python -m bench.threads_bench --examples 3000 --repeats 2

Each measurement runs in a fresh process, so that torch's thread pool is the one asked for.
Prints a markdown table (docs/benchmarks/threads.md holds the measured one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ONE_EPOCH = """
import json, os, sys, torch
threads = int(sys.argv[1])  # 0: torch's default; -1: the trainer's auto rule
if threads > 0:
    torch.set_num_threads(threads)
if threads >= 0:
    os.environ["SEQSERVE_TORCH_THREADS"] = str(torch.get_num_threads())  # the trainer keeps this count
from seqserve.services.trainer.classify import train_classifier
from seqserve.shared.config import get_settings
outcome = train_classifier(data_dir=get_settings().data_dir, out_path=sys.argv[2], preset="quick",
                           overrides={"max_train_examples": int(sys.argv[3]), "epochs": 1}, progress=False)
print(json.dumps({"threads": torch.get_num_threads(), "seconds": outcome.history[0]["seconds"]}))
"""


def epoch_seconds(threads: int, processes: int, examples: int) -> dict:
    """One epoch in a fresh process; threads 0: torch's default, -1: the auto rule for one of
    `processes` processes (SEQSERVE_TORCH_PROCESSES, as `seqserve up` sets it)."""
    env = {**os.environ, "SEQSERVE_TORCH_THREADS": "0", "SEQSERVE_TORCH_PROCESSES": str(processes)}
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", _ONE_EPOCH, str(threads), str(Path(out) / "model.pt"),
                               str(examples)], env=env, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from seqserve.shared.config import get_settings
    from seqserve.shared.threads import usable_cores

    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    seen, quota, usable = usable_cores(get_settings().cgroup_dir)
    arms = {  # (threads, processes sharing)
        "torch default": (0, 1),
        "one thread": (1, 1),
        "auto, trainer alone (first-run training in `up`)": (-1, 1),
        "auto, trainer beside one worker process (`up` serving)": (-1, 2),
    }
    print(f"cores seen {seen}, quota {quota}, usable {usable}, load {os.getloadavg()[0]:.1f}; "
          f"{args.examples} examples, {args.repeats} repeats")
    print("| arm | threads | neighbour | epoch seconds (each run) |\n|---|---|---|---|")
    for neighbour in ("idle", "busy"):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour == "busy" else None
        try:
            for name, (threads, processes) in arms.items():
                runs = [epoch_seconds(threads, processes, args.examples) for _ in range(args.repeats)]
                times = ", ".join(f"{r['seconds']:.1f}" for r in runs)
                print(f"| {name} | {runs[0]['threads']} | {neighbour} | {times} |", flush=True)
        finally:
            if spinner is not None:
                spinner.terminate()
                spinner.wait()
        time.sleep(1)


if __name__ == "__main__":
    main()
