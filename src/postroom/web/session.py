"""The dashboard's session cookie and the CSRF tokens tied to it.

The cookie never holds the API key. It names the key's id, an expiry and a random nonce, signed
with HMAC-SHA256 under a store secret (`get_or_create_secret("dashboard")`), so every process on
the store accepts it and nobody can forge or extend one. It is only a claim: each request checks
again that the key is still active (see `web/auth.py`), so revoking a key signs its sessions
out. The CSRF token is an HMAC of the session's nonce: a new session, a new token, and a page
of another session's cannot be replayed into this one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The cookie's name over plain HTTP (scoped to the dashboard's path), and over HTTPS (the
#: `__Host-` prefix: the browser takes it only with Secure, Path=/ and no Domain).
COOKIE = "postroom_dashboard"
SECURE_COOKIE = "__Host-" + COOKIE
#: How long a sign-in lasts. Sign-out deletes the browser's cookie; a copy of it stays valid
#: until this runs out or the key is revoked (sessions are not stored server-side).
SESSION_SECONDS = 8 * 3600
_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret is too short")
        self._secret, self._clock = secret, clock

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\0" + data, hashlib.sha256).digest()

    def issue(self, key_id: str) -> tuple[Session, str]:
        """A new session for `key_id` and its cookie value."""
        session = Session(key_id, int(self._clock()) + SESSION_SECONDS,
                          secrets.token_urlsafe(16))
        body = _b64(json.dumps({"k": session.key_id, "e": session.expires, "n": session.nonce},
                               separators=(",", ":")).encode())
        tag = _b64(self._mac(b"session", f"{_VERSION}.{body}".encode()))
        return session, f"{_VERSION}.{body}.{tag}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie names, or None when it is missing, forged or expired."""
        if not cookie or len(cookie) > 1024:
            return None
        version, _, rest = cookie.partition(".")
        body, _, tag = rest.partition(".")
        if version != _VERSION or not body or not tag:
            return None
        try:
            good = hmac.compare_digest(
                _unb64(tag), self._mac(b"session", f"{version}.{body}".encode()))
            fields = json.loads(_unb64(body)) if good else None
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(fields, dict):
            return None
        key_id, expires, nonce = fields.get("k"), fields.get("e"), fields.get("n")
        if not (isinstance(key_id, str) and isinstance(expires, int) and isinstance(nonce, str)):
            return None
        if expires <= self._clock():
            return None
        return Session(key_id, expires, nonce)

    def csrf(self, session: Session) -> str:
        """The token that forms of this session carry."""
        return _b64(self._mac(b"csrf", session.nonce.encode()))

    def csrf_ok(self, session: Session, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.csrf(session).encode())
