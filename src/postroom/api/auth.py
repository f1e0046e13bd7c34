"""API-key authentication and scopes for the HTTP API.

`Authorization: Bearer <key>` and, for Zoho-style clients, `Authorization: Zoho-oauthtoken <key>`.
Keys carry scopes (send, read, admin); the account's IP allow list applies as on SMTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() not in SCHEMES or not token:
        raise ApiError("AUTHENTICATION_FAILURE")
    store = request.app.state.store
    found = await asyncio.to_thread(store.find_api_key, hash_key(token))
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
