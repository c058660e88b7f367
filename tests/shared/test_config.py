"""Settings that take more than one shape."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from seqserve.shared.config import Settings
from seqserve.shared.jobs.kinds import JOB_KINDS


def test_batch_delay_is_per_kind_or_one_number_for_all(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(Settings().batch_max_delay_ms) == set(JOB_KINDS)
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_DELAY_MS", "2.5")
    assert Settings().batch_max_delay_ms == dict.fromkeys(JOB_KINDS, 2.5)
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_DELAY_MS", '{"translate": 5}')
    assert Settings().batch_max_delay_ms == {"translate": 5.0}
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_DELAY_MS", "-1")
    with pytest.raises(ValidationError, match="batch delays must be >= 0"):
        Settings()


def test_cpu_chunk_rows_default_to_the_registry_and_refuse_kinds_that_do_not_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().cpu_chunk_rows == {"classify": 64, "tag": 64, "translate": 32}  # the measured defaults
    monkeypatch.setenv("SEQSERVE_CPU_CHUNK_ROWS", '{"classify": 16}')
    assert Settings().cpu_chunk_rows == {"classify": 16, "tag": 64, "translate": 32}  # the others keep theirs
    for bad, message in (({"generate": 8}, r"\['generate'\] have no CPU chunking"), ({"tag": 0}, ">= 1 row"),
                         ({"nope": 4}, r"\['nope'\] have no CPU chunking")):
        with pytest.raises(ValidationError, match=message):
            Settings(cpu_chunk_rows=bad)
