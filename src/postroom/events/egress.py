"""Where webhook and notify POSTs may go: public addresses only, unless configured otherwise.

Why: any account with an API key chooses these URLs, and Postroom POSTs to them from inside the
sender's network. Without a check, `http://169.254.169.254/...` (a cloud's instance metadata),
`http://127.0.0.1:8025/admin/...` or a database on the private network would be reachable
through it (server-side request forgery). The check runs where the connection is made, on the
addresses the name resolves to at that moment, so a name that resolves to a public address
when the webhook is registered and to a private one later (DNS rebinding) is refused too.

`[webhooks] allow_private_targets = true` lifts it, for receivers on the same host or network
(tests, an internal event consumer). Redirects are never followed (sender.py), so a public
receiver cannot bounce a POST inward either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["GuardedBackend", "RefusedTarget", "guarded_transport", "is_public"]


#: IPv6 ranges that carry an IPv4 address in their last 32 bits and may reach it: NAT64
#: (RFC 6052, RFC 8215), IPv4-compatible (deprecated) and SIIT (RFC 6145).
_EMBEDDING = tuple(ipaddress.IPv6Network(n) for n in (
    "64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96"))


def is_public(address: str) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, shared,
    reserved, site-local, multicast or unspecified). An IPv6 address that embeds an IPv4 one
    (mapped, NAT64, IPv4-compatible, SIIT, 6to4) is judged as that IPv4 address, since a
    gateway may carry it there."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:
            return False
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif any(ip in net for net in _EMBEDDING):
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


class RefusedTarget(httpcore.ConnectError):
    """A receiver at a non-public address: the delivery fails at once instead of retrying
    for days (httpx raises its ConnectError from this one)."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, refusing connections to non-public addresses."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        refused = [a for a in addresses if not is_public(a)]
        if refused or not addresses:
            raise RefusedTarget(
                f"refused: {host} resolves to a non-public address ({', '.join(refused)}); "
                "[webhooks] allow_private_targets allows it")
        last: Exception | None = None
        for address in addresses:  # each checked address in turn, as a name would be tried
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise RefusedTarget("refused: unix sockets are not webhook receivers")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through GuardedBackend.

    httpx takes no network backend, so its connection pool is replaced by an equivalent one
    that has it (`_pool` is what `handle_async_request` uses; tests/events/test_egress.py
    fails if that ever changes)."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context,  # the same verification as httpx's own
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(),
    )
    return transport
