"""Settings that take more than one shape."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from seqserve.shared import config
from seqserve.shared.config import Settings, get_settings, reset_settings
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


def test_corpus_chunks_default_to_the_measured_sizes_and_others_to_their_batch_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    assert (settings.batch_chunk_inputs["tag"], settings.batch_chunk_inputs["classify"]) == (512, 1024)
    assert (settings.batch_max_inputs["tag"], settings.batch_max_inputs["classify"]) == (128, 256)  # unchanged
    assert settings.batch_chunk_inputs["translate"] == settings.batch_max_inputs["translate"]
    monkeypatch.setenv("SEQSERVE_BATCH_CHUNK_INPUTS", '{"tag": 64}')
    settings = Settings()
    assert (settings.batch_chunk_inputs["tag"], settings.batch_chunk_inputs["classify"]) == (64, 1024)


def test_a_reset_during_a_read_is_not_undone_by_that_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker's lease thread reading the settings while a test (or the CLI) resets them used to
    # cache what it read before the reset, after it: the next test ran on the last one's database.
    reading, release = threading.Event(), threading.Event()

    class SlowSettings(Settings):
        def __init__(self) -> None:
            super().__init__()
            reading.set()
            release.wait(10)

    monkeypatch.setattr(config, "Settings", SlowSettings)
    monkeypatch.setenv("SEQSERVE_VAR_DIR", "/srv/before")
    reset_settings()
    reader = threading.Thread(target=get_settings)
    reader.start()
    assert reading.wait(10)
    monkeypatch.setenv("SEQSERVE_VAR_DIR", "/srv/after")
    resetter = threading.Thread(target=reset_settings)
    resetter.start()
    time.sleep(0.2)  # the reset is under way (it waits for the read) before the read ends
    release.set()
    reader.join(10)
    resetter.join(10)
    try:
        assert get_settings().var_dir == Path("/srv/after")
    finally:
        reset_settings()
