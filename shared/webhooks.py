"""Webhook signatures, shared by the sender (worker) and anyone verifying (tests, users).

Headers on every delivery:
  X-Seqserve-Event: job.finished
  X-Seqserve-Delivery: <uuid of this attempt>
  X-Seqserve-Timestamp: <unix seconds>
  X-Seqserve-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
Receivers recompute the HMAC over the raw body and reject stale timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
