"""The README's "Use it from Python" and "Use it from the shell" examples, run as written
against a real stack (tiny models registered under the names the examples use)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import processes
from tests.conftest import register_outcome
from tests.model_fixtures import register

pytestmark = pytest.mark.e2e

SECTION = re.compile(r"^## Clients: Python, the shell, streaming$(.*?)^## ", re.M | re.S)


def blocks(language: str) -> list[str]:
    section = SECTION.search((processes.REPO_ROOT / "README.md").read_text())
    assert section is not None, "the README lost its clients section"
    return re.findall(rf"^```{language}\n(.*?)^```$", section.group(1), re.M | re.S)


@pytest.fixture()
def named(db: str, tiny_classifier: Any, tiny_lm: Any, stack: str) -> dict[str, str]:
    register_outcome("sst2-classifier", "classify", tiny_classifier)
    register("ptb-lm", "generate", tiny_lm)
    return {**os.environ, "SEQSERVE_URL": stack, "SEQSERVE_API_KEY": processes.STACK_KEY,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _run(command: list[str], env: dict[str, str]) -> str:
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, cwd=processes.REPO_ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_python_examples_run_as_written(named: dict[str, str]) -> None:
    first, second = blocks("python")
    out = _run([sys.executable, "-c", first], named)
    assert "a gorgeous, witty film" in out and "succeeded" in out and "422 invalid_request inputs[1]" in out
    assert "recent classify jobs" in _run([sys.executable, "-c", second], named)


def test_shell_examples_run_as_written(named: dict[str, str], tiny_classifier: Any) -> None:
    script, rollout = blocks("sh")
    out = _run(["bash", "-euo", "pipefail", "-c", script], named)
    assert "succeeded" in out and "sst2-classifier" in out and "refused: exit 2" in out
    register_outcome("sst2-classifier", "classify", tiny_classifier, gate=False)  # the example's version 2
    out = _run(["bash", "-euo", "pipefail", "-c", rollout], named)
    assert "v2 at rate 0.2" in out and "min_agreement=0.9" in out and "not yet: exit 2" in out
    assert "sst2-classifier@production -> v1" in out
