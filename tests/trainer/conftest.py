from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The datasets folder beside the checkout (or SEQSERVE_DATA_DIR)."""
    return Path(os.environ.get("SEQSERVE_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    # These models are tiny: extra intra-op threads only add synchronisation, and on a busy
    # 2-core machine spinning threads make a 2 s test take 20 s.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
