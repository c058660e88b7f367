"""The embedded broker: kombu's filesystem transport with an atomic put. Kombu's `_put`
creates the message file under its final name and then writes it, and its `_get` reads
without the lock `_put` takes, so a consumer polling every 50 ms (SEQSERVE_BROKER_POLL_SECONDS)
can read an empty file; the worker then dies of `JSONDecodeError` ("Unrecoverable error").
Seen on a fresh `seqserve up` at load 10. Here the message is written under a name no
consumer matches and renamed into place (os.replace: atomic within a folder)."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu names the argument `message` in AbstractChannel and `payload` in filesystem.Channel.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # `_get` takes the part after the first dot as the queue: ".tmp-..." matches none.
        partial = os.path.join(self.data_folder_out, f".tmp-{name.replace('.', '-')}")
        try:
            with open(partial, "wb") as handle:
                handle.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"  # Celery's broker_transport for a filesystem:// broker URL
