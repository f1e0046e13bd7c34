"""Signed, URL-safe tokens for links recipients click (consent, tracking, unsubscribe).

token = base64url(JSON payload) "." base64url(HMAC-SHA256(secret, payload)[:16]). A tampered or
foreign token fails `verify` and the endpoint answers 404, never acting on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, purpose: str, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(secret, purpose.encode() + b"\0" + body, hashlib.sha256).digest()[:16]
    return f"{_b64(body)}.{_b64(mac)}"


def verify(secret: bytes, purpose: str, token: str) -> dict[str, Any] | None:
    try:
        body_part, mac_part = token.split(".", 1)
        body, mac = _unb64(body_part), _unb64(mac_part)
    except (ValueError, TypeError):
        return None
    expected = hmac.new(secret, purpose.encode() + b"\0" + body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
