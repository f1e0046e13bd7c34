"""`Postroom-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>[,v1=…]`.

The time is inside the signed text, so a captured delivery cannot be replayed later with a new
time; receivers reject signatures older than a few minutes. During a secret rotation there are
two v1 values, one per valid secret: a receiver accepts the delivery if any one matches.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

HEADER = "Postroom-Signature"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], timestamp: int | None = None) -> str:
    """The header value for `body`, signed with every secret in `secrets` (newest first)."""
    if not secrets:
        raise ValueError("a delivery needs at least one secret")
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={signature(s, t, body)}" for s in secrets)])


def verify(body: bytes, header: str, secret: str, *, tolerance: float = TOLERANCE_SECONDS,
           now: float | None = None) -> bool:
    """True when `header` holds a v1 signature of `body` by `secret` made within `tolerance`
    seconds of `now` (the receiver's side; docs/WEBHOOKS.md shows the same in ten lines)."""
    fields = [part.strip().partition("=") for part in header.split(",")]
    stamps = [v for k, _, v in fields if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    t = int(stamps[0])
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = signature(secret, t, body)
    return any(hmac.compare_digest(expected, v) for k, _, v in fields if k == "v1")
