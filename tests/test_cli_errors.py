"""Every CLI error a user can cause: one line saying what to do, exit code 2, no traceback,
and no training-run row left behind. The commands run as a user runs them (subprocesses)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from seqserve.shared.db.models import TrainingRun
from seqserve.shared.db.session import session_scope
from tests import processes

_INFO_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|DEBUG) ")


def _seqserve(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seqserve.services.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, cwd=processes.REPO_ROOT)


def _one_line_usage_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if not _INFO_LOG.match(line)]  # alembic's, `up`'s
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"seqserve {command}: error: ")
    return lines[0]


def _runs() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(TrainingRun)) or 0)


def test_missing_data_names_the_absolute_path_and_both_remedies(db: str, stack_env: dict[str, str]) -> None:
    env = stack_env | {"SEQSERVE_DATA_DIR": "data"}  # relative, as in a fresh clone
    line = _one_line_usage_error(_seqserve(["train", "--task", "classify"], env), "train")
    expected = processes.REPO_ROOT / "data" / "sst2" / "glue" / "train.tsv"  # the command ran in the checkout
    assert f"missing data: {expected} does not exist" in line
    assert "SEQSERVE_DATA_DIR" in line and "`seqserve data download sst2`" in line
    assert "DataFormatError" not in line
    assert _runs() == 0


def test_missing_data_for_other_tasks_names_their_dataset(db: str, stack_env: dict[str, str], tmp_path: Path) -> None:
    env = stack_env | {"SEQSERVE_DATA_DIR": str(tmp_path)}
    line = _one_line_usage_error(_seqserve(["train", "--task", "generate"], env), "train")
    assert str(tmp_path / "ptb" / "ptb.train.txt.gz") in line and "`seqserve data download ptb`" in line
    line = _one_line_usage_error(_seqserve(["train", "--task", "translate"], env), "train")
    assert str(tmp_path / "multi30k_en_de" / "tok") in line and "`seqserve data download multi30k_en_de`" in line
    assert _runs() == 0


@pytest.mark.parametrize(("pairs", "expected"), [
    (["epochz=3"], "unknown override 'epochz'; known keys: ["),
    (["epochs=0"], "override 'epochs'"),
    (["novalue"], "--set expects key=value, got 'novalue'"),
])
def test_bad_overrides_are_one_line(db: str, stack_env: dict[str, str], pairs: list[str], expected: str) -> None:
    args = ["train", "--task", "classify", *(arg for pair in pairs for arg in ("--set", pair))]
    line = _one_line_usage_error(_seqserve(args, stack_env), "train")
    assert expected in line
    if "known keys" in line:
        assert "'epochs'" in line and "'hidden_size'" in line
    assert _runs() == 0


@pytest.mark.parametrize("args", [["train", "--task", "classify"], ["keys", "list"], ["trainer"], ["worker"]])
def test_an_unmigrated_database_says_seqserve_db_upgrade(args: list[str], tmp_path: Path) -> None:
    env = {"SEQSERVE_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "SEQSERVE_VAR_DIR": str(tmp_path / "var")}
    line = _one_line_usage_error(_seqserve(args, env), args[0])
    assert "has no schema" in line and "run `seqserve db upgrade` first" in line


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://nobody:secret@127.0.0.1:{processes.free_port()}/none"
    line = _one_line_usage_error(_seqserve(["keys", "list"], {"SEQSERVE_DATABASE_URL": url}), "keys")
    assert "cannot reach the database" in line and "SEQSERVE_DATABASE_URL" in line
    assert "secret" not in line  # the password stays out


def test_up_without_data_stops_before_training_with_one_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEQSERVE_")}
    env |= {"SEQSERVE_VAR_DIR": str(tmp_path / "var"), "SEQSERVE_DATA_DIR": str(tmp_path / "no-data")}
    result = subprocess.run([sys.executable, "-m", "seqserve.services.cli", "up", "--port", str(processes.free_port())],
                            env=env, capture_output=True, text=True, timeout=120, cwd=processes.REPO_ROOT)
    line = _one_line_usage_error(result, "up")
    assert str(tmp_path / "no-data" / "sst2" / "glue" / "train.tsv") in line
