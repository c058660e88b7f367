from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The datasets folder beside the checkout (or SEQSERVE_DATA_DIR)."""
    return Path(os.environ.get("SEQSERVE_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets"))
