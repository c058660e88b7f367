"""scripts/bootstrap.sh: one pip run, and none when the venv already holds this checkout's
requirements. Run on a copy of the script and pyproject.toml with a stand-in `.venv/bin/python`
that records how it is called (a real install takes minutes and the network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests import processes

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls.log"
case "$1" in
  -VV) exec {real} -VV ;;
  -c) echo "seqserve environment ready: torch (stand-in)" ;;
  -m) [ -n "${{SLOW_PIP:-}}" ] && sleep "$SLOW_PIP"
      echo "a build warning pip printed"
      [ -z "${{FAIL_PIP:-}}" ] || {{ echo "ERROR: no matching distribution"; exit 1; }} ;;
esac
"""


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(processes.REPO_ROOT / "scripts" / "bootstrap.sh", root / "scripts")
    shutil.copy(processes.REPO_ROOT / "pyproject.toml", root)
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON.format(real=sys.executable))
    python.chmod(0o755)
    return root


def _bootstrap(root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
               ) -> tuple[str, list[str]]:
    """What the script printed (stdout and stderr), and the pip installs it ran."""
    log = root / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(["bash", str(root / "scripts" / "bootstrap.sh"), *args], capture_output=True, text=True,
                          timeout=60, check=check, env={**os.environ, **(env or {})})
    calls = log.read_text().splitlines() if log.exists() else []
    return done.stdout + done.stderr, [call for call in calls if call.startswith("-m pip")]


def test_one_pip_run_then_none_until_the_requirements_change(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    printed, pips = _bootstrap(root)
    assert pips == ["-m pip install --quiet --disable-pip-version-check --no-compile -e ."], pips
    assert "seqserve environment ready" in printed and "build warning" not in printed  # pip's noise: in its log
    printed, pips = _bootstrap(root)
    assert pips == [] and "seqserve environment up to date" in printed
    _, pips = _bootstrap(root, "test")  # the test extras are not installed yet
    assert pips == ["-m pip install --quiet --disable-pip-version-check --no-compile -e .[test]"], pips
    for args in ((), ("test",)):  # a test install serves a plain run too
        printed, pips = _bootstrap(root, *args)
        assert pips == [] and "up to date" in printed, (args, printed)
    with (root / "pyproject.toml").open("a") as handle:
        handle.write("\n# a changed requirement\n")
    _, pips = _bootstrap(root)
    assert len(pips) == 1, pips


def test_a_long_install_says_it_is_busy_and_leaves_nothing_running(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    started = time.monotonic()
    printed, pips = _bootstrap(root, env={"SLOW_PIP": "11"})
    elapsed = time.monotonic() - started
    assert len(pips) == 1 and "  still installing (10 s)" in printed.splitlines(), printed
    # The output pipe closes when the script ends: a ticker's sleep left behind would hold it
    # open up to 10 s longer.
    assert elapsed < 19, elapsed


def test_a_failed_install_shows_pip_and_stops(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    printed, _ = _bootstrap(root, env={"FAIL_PIP": "1"}, check=False)
    assert "ERROR: no matching distribution" in printed and "pip could not install seqserve" in printed, printed
    assert "environment ready" not in printed
    _, pips = _bootstrap(root)  # nothing was recorded as installed: the next run tries again
    assert len(pips) == 1
