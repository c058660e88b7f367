"""The embedded broker's atomic put: a consumer draining the queue folder while another
thread publishes never reads a partly written message (kombu's own `_put` let it read an
empty file, which killed the worker with JSONDecodeError: 2 of these 400 messages on the
stock transport, 2026-12-02, load ~9)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from queue import Empty

from kombu import Connection

from seqserve.shared import broker_files

MESSAGES = 400
PAYLOAD = {"body": "x" * 200_000}  # large enough that writing it takes a while


def _connection(folder: Path, transport: type) -> Connection:
    return Connection("filesystem://", transport=transport, transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False})


def _race(folder: Path, transport: type) -> tuple[int, list[Exception]]:
    """(messages read whole, errors) with one thread publishing and this one consuming."""
    done, errors, got = threading.Event(), [], 0
    with _connection(folder, transport) as writer, _connection(folder, transport) as reader:
        put, get = writer.default_channel, reader.default_channel

        def publish() -> None:
            for _ in range(MESSAGES):
                put._put("q", PAYLOAD)
            done.set()

        thread = threading.Thread(target=publish)
        thread.start()
        while got < MESSAGES and not (done.is_set() and got + len(errors) >= MESSAGES):
            try:
                assert get._get("q") == PAYLOAD
                got += 1
            except Empty:
                continue
            except ValueError as exc:  # json.JSONDecodeError
                errors.append(exc)
        thread.join()
    return got, errors


def test_a_consumer_never_reads_a_partial_message(tmp_path: Path) -> None:
    got, errors = _race(tmp_path, broker_files.Transport)
    assert errors == [] and got == MESSAGES
    assert os.listdir(tmp_path) == []  # every message read, no temporary file left behind


def test_the_celery_app_uses_it_for_a_filesystem_broker(tmp_path: Path) -> None:
    from seqserve.shared.config import Settings
    from seqserve.shared.queueing import make_celery

    app = make_celery(Settings(var_dir=tmp_path, broker_url="filesystem://"))
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, broker_files.Transport)
        conn.default_channel._put("maintenance", {"a": 1})
        assert conn.default_channel._get("maintenance") == {"a": 1}

