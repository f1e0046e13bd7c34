"""VERP return paths: `local+<token>@bounce-domain`, naming the message and the recipient.

When an account has a bounce address, each copy goes out with an envelope sender of its own, so
an asynchronous bounce (one that a receiving server sends later instead of refusing at RCPT)
comes back to an address that says which recipient of which message failed. The token is

    <message id>-<recipient id in base 36>-<signature>

where the signature is the first 80 bits of HMAC-SHA256(secret, "<message id>-<recipient id>")
in lowercase base32. Everything is lowercase because some receivers fold the case of local parts;
message ids are lowercase Crockford base32 already. The signature stops anyone from forging
bounces for messages they did not send; the secret lives in the store
(`Store.get_or_create_secret("verp")`), shared by every Postroom process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

__all__ = ["SECRET_NAME", "decode", "encode"]

#: The name of the store secret that signs VERP tokens.
SECRET_NAME = "verp"
_SIG_BYTES = 10  # 80 bits: 16 base32 characters
_TOKEN = re.compile(r"^([0-9a-z]{26})-([0-9a-z]{1,13})-([a-z2-7]{16})$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    if n < 0:
        raise ValueError("recipient ids are not negative")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if n == 0:
            return out


def _signature(secret: bytes, message_id: str, recipient_id: int) -> str:
    mac = hmac.new(secret, f"{message_id}-{recipient_id}".encode(), hashlib.sha256)
    return base64.b32encode(mac.digest()[:_SIG_BYTES]).decode("ascii").lower()


def encode(bounce_address: str, message_id: str, recipient_id: int, secret: bytes) -> str:
    """The VERP return path for one recipient, built on the account's bounce address."""
    local, at, domain = bounce_address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an address: {bounce_address!r}")
    message_id = message_id.lower()
    token = f"{message_id}-{_base36(recipient_id)}-{_signature(secret, message_id, recipient_id)}"
    return f"{local}+{token}@{domain}"


def decode(address: str, secret: bytes) -> tuple[str, int] | None:
    """(message id, recipient id) from a VERP address, or None when it is not one of ours
    (no token, malformed, or a signature that does not match `secret`)."""
    local, at, _domain = address.strip().strip("<>").rpartition("@")
    if not at:
        return None
    _base, plus, token = local.rpartition("+")
    match = _TOKEN.match(token.lower()) if plus else None
    if match is None:
        return None
    message_id, rid_text, signature = match.groups()
    recipient_id = int(rid_text, 36)
    expected = _signature(secret, message_id, recipient_id)
    if not hmac.compare_digest(expected, signature):
        return None
    return message_id, recipient_id
