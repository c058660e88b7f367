"""Training benchmark: train and evaluate presets, write the results table in docs/.

    .venv/bin/python -m bench.train_bench --preset full --tasks tag classify generate translate

Each row: task, metric, measured value beside its target, training time, the machine, and the
sha256 of every data file the run read. Results accumulate in docs/benchmarks/training.json
(one entry per task and preset, replaced by a newer run) and the table in
docs/benchmarks/training.md is rebuilt from it. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from bench.machine import cpu_machine
from seqserve.services.cli import parse_overrides

DATA_DIR = Path(os.environ.get("SEQSERVE_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
RESULTS = Path("docs/benchmarks/training.json")
TABLE = Path("docs/benchmarks/training.md")

# task -> (metric key in TrainOutcome.metrics, target, "min"/"max", what the metric is)
TARGETS: dict[str, tuple[str, float, str, str]] = {
    "tag": ("test_accuracy", 0.95, "max", "UPOS accuracy, EWT test"),
    "classify": ("accuracy", 0.86, "max", "SST-2 dev accuracy"),
    "generate": ("test_perplexity", 100.0, "min", "PTB test perplexity"),
    "translate": ("test_bleu", 33.0, "max", "Multi30k test2016 BLEU (lowercased, tokenized)"),
}


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA), {os.cpu_count()} CPUs"
    return cpu_machine()


def data_files(files: dict[str, str]) -> dict[str, str]:
    """The run's data files (path -> sha256), named relative to the data directory where they lie in it."""
    named = {}
    for path, digest in files.items():
        try:
            named[str(Path(path).relative_to(DATA_DIR))] = digest
        except ValueError:
            named[path] = digest
    return named


def run(task: str, preset: str, out_dir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    from seqserve.services.trainer.service import trainers

    started = time.perf_counter()
    outcome = trainers()[task](data_dir=DATA_DIR, out_path=out_dir / task / preset / "model.pt", preset=preset,
                               overrides=overrides, progress=True)
    seconds = time.perf_counter() - started
    metric, target, mode, label = TARGETS[task]
    value = float(outcome.metrics[metric])
    met = value >= target if mode == "max" else value <= target
    return {
        "task": task, "preset": preset, "metric": metric, "label": label, "value": value, "target": target,
        "mode": mode, "met": met, "seconds": round(seconds, 1), "epochs": len(outcome.history),
        "machine": machine(), "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": outcome.metrics, "data_files": data_files(outcome.data_files), "overrides": overrides,
    }


def _overrides(entry: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((entry.get("overrides") or {}).items())) or "none"


def _key(entry: dict[str, Any]) -> tuple[str, str, str]:
    """One row per task, preset and overrides: a run with other overrides (a seed) is kept beside."""
    return entry["task"], entry["preset"], json.dumps(entry.get("overrides") or {}, sort_keys=True)


def write_table(entries: list[dict[str, Any]]) -> None:
    lines = [
        "# Training benchmark", "",
        "Written by `bench/train_bench.py` from `training.json`; every number was measured by that script.", "",
        "Rows with `pretrained=...` are `bench/pretrain_bench.py`'s comparisons: each beside its random-init twin "
        "(the same overrides without `pretrained`); the gains are tabulated in [../embeddings.md](../embeddings.md).", "",
        "| task | preset | overrides | metric | measured | target | met | time | epochs | machine | finished |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in sorted(entries, key=_key):
        comparator = ">=" if e["mode"] == "max" else "<="
        lines.append(
            f"| {e['task']} | {e['preset']} | {_overrides(e)} | {e['label']} | {e['value']:.4g} "
            f"| {comparator} {e['target']:g} "
            f"| {'yes' if e['met'] else 'no'} | {e['seconds'] / 60:.1f} min | {e['epochs']} | {e['machine']} "
            f"| {e['finished_at']} |"
        )
    notes = [f"- {e['task']}/{e['preset']} ({_overrides(e)}): {e['note']}" for e in entries if e.get("note")]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines += pretraining_table(entries)
    lines += ["", "## Data files (sha256)", ""]
    for e in entries:
        for name, digest in e["data_files"].items():
            lines.append(f"- {e['task']}/{e['preset']}: `{name}` {digest}")
    TABLE.write_text("\n".join(lines) + "\n")


def pretraining_table(entries: list[dict[str, Any]]) -> list[str]:
    """Rows of bench/pretrain_bench.py: each run beside the same run without `pretrained`."""
    def settings(e: dict[str, Any]) -> str:
        arm = ("pretrained", "freeze_pretrained")
        return json.dumps({k: v for k, v in (e.get("overrides") or {}).items() if k not in arm}, sort_keys=True)

    baselines = {(e["task"], e["preset"], settings(e)): e for e in entries
                 if "pretrained" not in (e.get("overrides") or {})}
    lines = []
    for e in sorted(entries, key=_key):
        base = baselines.get((e["task"], e["preset"], settings(e)))
        if "pretrained" not in (e.get("overrides") or {}) or base is None:
            continue
        o = e["overrides"]
        vectors = o["pretrained"] + (" (frozen)" if o.get("freeze_pretrained") else "")
        lines.append(f"| {e['task']} | {o.get('max_train_examples', 'all')} | {o.get('seed', 'preset')} | {e['label']} "
                     f"| {base['value']:.4f} | {e['value']:.4f} | {100 * (e['value'] - base['value']):+.2f} "
                     f"| {vectors} | {base['seconds']:.0f} s / {e['seconds']:.0f} s | {e['machine']} |")
    if not lines:
        return []
    return ["", "## Pretrained word vectors (bench/pretrain_bench.py)", "",
            "Each run beside the same run (same seed, settings and slice) with a randomly initialised embedding; "
            "the rows above list both. Gain in percentage points.", "",
            "| task | train examples | seed | metric | random init | pretrained | gain | vectors | time | machine |",
            "|---|---|---|---|---|---|---|---|---|---|", *lines]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--preset", default="full", choices=("quick", "full"))
    parser.add_argument("--out-dir", type=Path, default=Path("var/bench-models"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every task")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        result = run(task, args.preset, args.out_dir, overrides)
        print(json.dumps(result, indent=2), flush=True)
        # Re-read: another benchmark process may have written its own rows meanwhile.
        entries = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        entries = [e for e in entries if _key(e) != _key(result)] + [result]
        RESULTS.write_text(json.dumps(entries, indent=2))
        write_table(entries)


if __name__ == "__main__":
    main()
