"""API-key authentication and scopes for the HTTP API.

`Authorization: Bearer <key>` and, for Zoho-style clients, `Authorization: Zoho-oauthtoken <key>`.
Keys carry scopes (send, read, admin); the account's IP allow list applies as on SMTP.
Found keys are remembered for a couple of seconds (`KeyCache`): a store query through a worker
thread per request cost more CPU than a whole no-op request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from postroom.api.errors import ApiError
from postroom.model import Account, ApiKey
from postroom.submission import checks
from postroom.submission.keys import hash_key

SCHEMES = ("bearer", "zoho-oauthtoken")


@dataclass(frozen=True, slots=True)
class Principal:
    account: Account
    key: ApiKey
    client_ip: str


class KeyCache:
    """Key hash → (key, account) for `ttl` seconds, like the SMTP side's AccountCache: a key
    revoked or an account changed by another process takes effect within `ttl`; this process's
    own admin changes call `clear()`. Unknown keys are never cached (each miss asks the store)."""

    def __init__(self, store: Any, ttl: float = 2.0, size: int = 4096) -> None:
        self.store, self.ttl, self.size = store, ttl, size
        self._found: dict[str, tuple[ApiKey, Account, float]] = {}

    async def find(self, key_hash: str) -> tuple[ApiKey, Account] | None:
        hit = self._found.get(key_hash)
        now = time.monotonic()
        if hit is not None and now - hit[2] < self.ttl:
            return hit[0], hit[1]
        found = await asyncio.to_thread(self.store.find_api_key, key_hash)
        if found is None:
            self._found.pop(key_hash, None)
            return None
        if len(self._found) >= self.size:
            self._found.clear()
        self._found[key_hash] = (found[0], found[1], now)
        return found

    def clear(self) -> None:
        self._found.clear()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() not in SCHEMES or not token:
        raise ApiError("AUTHENTICATION_FAILURE")
    found = await request.app.state.keys.find(hash_key(token))
    if found is None:
        raise ApiError("AUTHENTICATION_FAILURE")
    key, account = found
    ip = client_ip(request)
    if checks.ip_allowed(account, ip) is not None:
        raise ApiError("NO_PERMISSION", "This client address is not allowed for the account.",
                       {"client_ip": ip})
    return Principal(account, key, ip)


def require(scope: str | None) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: authenticate, then insist on `scope`."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if not request.app.state.rate_limiter.allow(principal.key.id):
            raise ApiError("RATE_LIMITED", details={"retry_after_seconds": 1})
        if scope is not None and scope not in principal.key.scopes:
            raise ApiError("NO_PERMISSION", f"This API key lacks the '{scope}' scope.",
                           {"required_scope": scope})
        return principal

    dependency.__name__ = f"require_{scope or 'key'}"
    return dependency
