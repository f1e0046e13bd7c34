"""Asynchronous DNS for delivery: MX lookup with the RFC 5321 §5.1 rules and a small TTL cache.

Delivery only needs three questions answered (where does mail for this domain go, what are a
host's addresses, what TXT records exist), so this wraps `dns.asyncresolver` behind them and
turns every DNS outcome into either an answer, a `DnsPermanentError` (the message should bounce:
NXDOMAIN, null MX) or a `DnsTemporaryError` (try later: SERVFAIL, timeouts). Error texts are
bland on purpose: they end up in DSNs and event payloads.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

if TYPE_CHECKING:
    from postroom.config.settings import DeliverySettings

__all__ = [
    "DnsError",
    "DnsPermanentError",
    "DnsTemporaryError",
    "MxHost",
    "MxResult",
    "Resolver",
    "parse_nameserver",
]


class DnsError(Exception):
    """A lookup that produced no usable answer. `reason` is safe to show to users."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


class DnsPermanentError(DnsError):
    """The answer is final (NXDOMAIN, null MX, no mail route): retrying will not help."""


class DnsTemporaryError(DnsError):
    """The lookup failed (SERVFAIL, timeout, no servers): the same question may work later."""


@dataclass(frozen=True, slots=True)
class MxHost:
    host: str
    preference: int


@dataclass(frozen=True, slots=True)
class MxResult:
    """Where mail for `domain` goes, best first. `implicit`: no MX, the domain's own address."""

    domain: str
    hosts: tuple[MxHost, ...]
    implicit: bool = False

    @property
    def names(self) -> list[str]:
        return [h.host for h in self.hosts]


@dataclass(frozen=True, slots=True)
class _Answer:
    kind: Literal["ok", "nodata", "nxdomain"]
    rdatas: tuple[object, ...] = ()


def parse_nameserver(value: str) -> tuple[str, int]:
    """ "host", "host:port", "[v6]:port" or a bare IPv6 address -> (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, 53


def _ip_literal(text: str) -> str | None:
    inner = text.strip("[]")
    if inner[:5].lower() == "ipv6:":  # stored domains are lowercased: "[ipv6:::1]"
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        return None


class Resolver:
    """MX / address / TXT lookups with a per-(name, type) cache that honours record TTLs."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        *,
        timeout: float = 3.0,
        lifetime: float = 8.0,
        max_entries: int = 4096,
        max_ttl: float = 3600.0,
        negative_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._servers = [parse_nameserver(s) for s in nameservers]
        self._timeout, self._lifetime = timeout, lifetime
        self._max_entries, self._max_ttl, self._negative_ttl = max_entries, max_ttl, negative_ttl
        self._clock = clock
        self._rng = rng or random.Random()
        self._cache: OrderedDict[tuple[str, str], tuple[float, _Answer]] = OrderedDict()
        self._resolver: dns.asyncresolver.Resolver | None = None

    @classmethod
    def from_settings(cls, settings: DeliverySettings, **kwargs: Any) -> Resolver:
        """A resolver using `[delivery] nameservers` (empty: the system's resolv.conf)."""
        return cls(settings.nameservers, **kwargs)

    def clear_cache(self) -> None:
        self._cache.clear()

    # --- the three questions ----------------------------------------------------------------
    async def resolve_mx(self, domain: str) -> MxResult:
        """Mail exchangers for `domain`, by preference (equal preferences in random order)."""
        name = _normalize(domain)
        literal = _ip_literal(domain) if domain.startswith("[") else None
        if literal is not None:
            return MxResult(domain, (MxHost(literal, 0),), implicit=True)
        answer = await self._lookup(name, "MX")
        if answer.kind == "nxdomain":
            raise DnsPermanentError(name, f"Domain {name} does not exist (NXDOMAIN)")
        if answer.kind == "nodata":
            # RFC 5321 §5.1: no MX records means the domain itself is the mail host.
            if not await self.resolve_addresses(name):
                raise DnsPermanentError(name, f"Domain {name} has no MX or address records")
            return MxResult(name, (MxHost(name, 0),), implicit=True)
        best: dict[str, int] = {}
        for rd in answer.rdatas:
            host = rd.exchange.to_text(omit_final_dot=True).lower()  # type: ignore[attr-defined]
            pref = int(rd.preference)  # type: ignore[attr-defined]
            if host and host != "." and pref < best.get(host, 1 << 16):
                best[host] = pref
        if not best:  # RFC 7505: "0 ." says this domain never receives mail
            raise DnsPermanentError(name, f"Domain {name} does not accept mail (null MX)")
        hosts = [MxHost(h, p) for h, p in best.items()]
        self._rng.shuffle(hosts)
        hosts.sort(key=lambda h: h.preference)  # stable: ties keep their shuffled order
        return MxResult(name, tuple(hosts))

    async def resolve_addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of `host`; [] when it exists without any (NODATA)."""
        literal = _ip_literal(host)
        if literal is not None:
            return [literal]
        name = _normalize(host)
        results = await asyncio.gather(
            self._lookup(name, "A"), self._lookup(name, "AAAA"), return_exceptions=True
        )
        addresses = [
            rd.address  # type: ignore[attr-defined]
            for r in results
            if isinstance(r, _Answer)
            for rd in r.rdatas
        ]
        if addresses:
            return addresses
        for r in results:
            if isinstance(r, BaseException):
                raise r
        if all(isinstance(r, _Answer) and r.kind == "nxdomain" for r in results):
            raise DnsPermanentError(name, f"Host {name} does not exist (NXDOMAIN)")
        return []

    async def txt(self, name: str) -> list[str]:
        """Each TXT record at `name` with its strings joined; [] when there are none."""
        answer = await self._lookup(_normalize(name), "TXT")
        return [
            b"".join(rd.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
            for rd in answer.rdatas
        ]

    # --- plumbing -------------------------------------------------------------------------
    async def _lookup(self, name: str, rdtype: str) -> _Answer:
        key = (name, rdtype)
        hit = self._cache.get(key)
        if hit is not None:
            if hit[0] > self._clock():
                self._cache.move_to_end(key)
                return hit[1]
            del self._cache[key]
        answer, ttl = await self._query(name, rdtype)
        if ttl > 0:
            self._cache[key] = (self._clock() + min(ttl, self._max_ttl), answer)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return answer

    async def _query(self, name: str, rdtype: str) -> tuple[_Answer, float]:
        if not name or len(name) > 253:
            raise DnsPermanentError(name, f"Invalid domain name {name!r}")
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError):
            raise DnsPermanentError(name, f"Invalid domain name {name!r}") from None
        try:
            ans = await self._get_resolver().resolve(
                qname, rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return _Answer("nxdomain"), self._negative_ttl
        except dns.resolver.NoNameservers:
            raise DnsTemporaryError(name, f"DNS servers failed to answer for {name}") from None
        except dns.exception.Timeout:
            raise DnsTemporaryError(name, f"DNS lookup for {name} timed out") from None
        except dns.resolver.NoResolverConfiguration:
            raise DnsTemporaryError(name, "No DNS servers are configured") from None
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(
                name, f"DNS lookup for {name} failed ({type(exc).__name__})"
            ) from None
        ttl = max(0.0, ans.expiration - time.time())
        if ans.rrset is None:  # NODATA: the SOA minimum when there is one, bounded
            return _Answer("nodata"), min(ttl or self._negative_ttl, self._negative_ttl)
        return _Answer("ok", tuple(ans.rrset)), ttl

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            if self._servers:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(_server_address(h, p), p)
                    for h, p in self._servers
                ]
            else:
                resolver = dns.asyncresolver.Resolver()
            resolver.timeout, resolver.lifetime = self._timeout, self._lifetime
            resolver.cache = None
            self._resolver = resolver
        return self._resolver


def _server_address(host: str, port: int) -> str:
    """A name server's IP address: dnspython takes addresses only, and given a name (the
    documented "host:port" form, e.g. localhost) it sent nothing, so every lookup timed out.
    A name is resolved once, when the resolver is built."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise DnsTemporaryError(host, f"name server {host} cannot be resolved ({exc})") from None
    return str(found[0][4][0])


def _normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()
