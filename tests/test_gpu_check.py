"""bench/gpu_check.sh as far as a CPU runs it: arguments, the table, the dry run, and the CUDA
tests' training overrides (checked here so the GPU run cannot fail on a bad key)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench import gpu_check
from bench.gpu_check import Row, format_table, parse_args
from seqserve.shared.training.presets import resolve_config
from tests.gpu.test_cuda import TRAINERS
from tests.processes import REPO_ROOT


def test_arguments_default_to_every_step_and_refuse_unknown_ones(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args([])
    assert args.steps == list(gpu_check.STEPS) and not args.dry_run and args.scale == 1.0
    assert parse_args(["--steps", "epoch", "--dry-run", "--scale", "0.5"]).steps == ["epoch"]
    for bad in (["--steps", "benchmarks"], ["--scale", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(bad)
        assert exit_info.value.code == 2
    assert "--scale must be > 0" in capsys.readouterr().err


def test_the_table_has_one_aligned_line_per_row() -> None:
    rows = [Row("cuda-tests", "test_a", "passed", 1.25), Row("serving", "classify seqserve x1 c16", "failed", None, "x")]
    lines = format_table(rows).splitlines()
    assert lines[0].split("|")[1].strip() == "step" and set(lines[1]) <= {"|", "-"}
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert "| 1.2 " in lines[2] or "| 1.3 " in lines[2]
    assert lines[3].split("|")[4].strip() == ""  # no seconds: an empty cell


def test_dry_run_prints_the_plan_within_eight_minutes(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    done = subprocess.run(["bench/gpu_check.sh", "--dry-run", "--out", str(out)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    rows = json.loads(out.read_text())["rows"]
    assert {r["step"] for r in rows} == set(gpu_check.STEPS) and all(r["status"] == "planned" for r in rows)
    assert {r["item"] for r in rows if r["step"] == "epoch"} == {"classify", "tag", "generate", "translate"}
    assert sum(r["seconds"] for r in rows) < 8 * 60
    assert done.stdout.count("planned") == len(rows)


def test_the_cuda_tests_overrides_are_valid() -> None:
    for task, (_, overrides) in TRAINERS.items():
        resolve_config(task, "quick", overrides)
    for task, (key, size, _) in gpu_check.EPOCH_SLICES.items():
        resolve_config(task, "full", {key: size, "epochs": 1, "time_budget_minutes": 0.0})


def test_the_epoch_step_trains_a_full_preset_slice_and_scales_it() -> None:
    # On the CPU and a small slice: the same code the GPU run executes, with device and size swapped.
    row = gpu_check.epoch("classify", limit=240, device="cpu", size=200)
    assert row.status == "passed", row.detail
    assert row.seconds is not None and row.seconds > 0
    assert "200 of 67349 (max_train_examples)" in row.detail and "full epoch ~" in row.detail
