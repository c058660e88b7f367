"""Keyset-pagination cursors shared by the list routes (jobs, batches): a row's creation time
and id, opaque to clients."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Protocol

from seqserve.services.api.errors import ApiError


class Paged(Protocol):
    created_at: datetime
    id: uuid.UUID


def encode_cursor(row: Paged) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(row_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_cursor", "cursor is not one this API returned", "cursor") from exc
