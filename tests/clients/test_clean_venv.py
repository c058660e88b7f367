"""The client installed alone into a fresh virtualenv (no torch, no server packages) runs a
job against a real stack: the package needs httpx and httpx-sse and nothing else."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import processes

pytestmark = pytest.mark.e2e

# httpx, httpx-sse and what they import: linked from this environment (the machine is offline).
PACKAGES = ("httpx", "httpx_sse", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio")
SCRIPT = """
import importlib.util, sys
assert importlib.util.find_spec("torch") is None and importlib.util.find_spec("seqserve") is None
from seqserve_client import Client, NotFound
with Client() as client:
    job = client.run("classify", "tiny-sst2", ["a gorgeous, witty film"])
    print(job.status, job.result[0].label)
    try:
        client.jobs.get("00000000-0000-0000-0000-000000000000")
    except NotFound as exc:
        print("typed", exc.code)
"""


def _link(target: Path, names: tuple[str, ...]) -> None:
    target.mkdir()
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue  # sniffio is optional for newer anyio
        (target / name).symlink_to(Path(spec.origin).parent)


def _modern_setuptools() -> Path:
    """A setuptools on this interpreter's path new enough to build wheels without `wheel`
    (a venv's own copy from ensurepip may predate that, and shadow a newer one)."""
    for entry in sys.path:
        candidate = Path(entry) / "setuptools"
        if (candidate / "command" / "bdist_wheel.py").is_file():
            return candidate
    pytest.skip("no setuptools with a built-in bdist_wheel on this path (offline: nothing to build the client with)")


def test_the_client_alone_in_a_fresh_virtualenv(served: str, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = next((venv / "lib").glob("python*/site-packages"))
    # Built here (offline) with a setuptools that has bdist_wheel built in, installed into the fresh venv alone.
    build = tmp_path / "build"
    build.mkdir()
    (build / "setuptools").symlink_to(_modern_setuptools())
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                              "--no-build-isolation", "--target", str(site),
                              str(processes.REPO_ROOT / "clients" / "python")],
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(build)})
    assert install.returncode == 0, install.stdout + install.stderr
    assert (site / "seqserve_client" / "client.py").is_file()
    deps = tmp_path / "deps"
    _link(deps, PACKAGES)
    (site / "deps.pth").write_text(str(deps) + "\n")
    torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True, cwd=tmp_path)
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr
    env = {"SEQSERVE_URL": served, "SEQSERVE_API_KEY": processes.STACK_KEY, "PATH": "/usr/bin:/bin"}
    run = subprocess.run([str(python), "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("succeeded ") and "typed job_not_found" in run.stdout
