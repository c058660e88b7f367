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
