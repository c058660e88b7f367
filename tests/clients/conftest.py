"""One real stack (api + worker on the test Postgres and Redis) for the client, CLI,
streaming and README tests, with the tiny classifier and language model registered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import processes
from tests.conftest import register_tiny
from tests.model_fixtures import register


# Per module: a worker left running would take the jobs of in-process worker tests.
@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with processes.running(stack_env, tmp_path_factory.mktemp("client-stack"), ["worker", "--concurrency", "1"]) as base:
        yield base


@pytest.fixture()
def served(db: str, tiny_classifier: Any, tiny_lm: Any, stack: str) -> str:
    """The stack's URL, `tiny-sst2` (classify) and `tiny-lm` (generate) registered."""
    register_tiny(tiny_classifier)
    register("tiny-lm", "generate", tiny_lm)
    return stack
