"""Where to connect for a recipient domain: a configured route (smarthost) or the domain's MX.

Routes come from `[delivery] routes` and win over DNS, so a test setup or a relay provider can
take all mail without touching DNS. Each `Destination` carries a `key` that names the connection
pool it may share: two routes to the same relay with different credentials must not share one.
MX destinations follow the domain's MTA-STS policy (`mta_sts_policies`): in enforce mode only
the MX hosts the policy names, each with TLS required and verified; none of them: the domain's
mail waits (`MtaStsRefused`), it is never sent elsewhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Protocol

import idna

from postroom.config.settings import DeliverySettings, RouteSettings, TlsMode
from postroom.delivery.dns import MxHost, MxResult
from postroom.delivery.mta_sts_policies import MtaStsPolicies
from postroom.smtp.client import TlsError

__all__ = ["Destination", "MtaStsRefused", "MxResolver", "Router", "parse_host_port"]


class MxResolver(Protocol):
    async def resolve_mx(self, domain: str) -> MxResult: ...


class MtaStsRefused(TlsError):
    """The domain's enforced MTA-STS policy names none of its MX hosts: its mail waits."""


@dataclass(frozen=True, slots=True)
class Destination:
    """One place to try, in order. `host` is a name or an IP address."""

    host: str
    port: int
    tls: TlsMode
    verify: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: Literal["route", "mx"] = "mx"
    preference: int = 0
    #: the MTA-STS mode of the domain's policy ("": none): enforce has TLS required, verified
    mta_sts: Literal["", "enforce", "testing"] = ""

    @property
    def key(self) -> str:
        """Connection-pool key: "mx:host:port:tls:verify[:sts-mode]", for a route with
        credentials also the username and a digest of the password. Everything that shapes a
        session is in it: two routes to one host, one with `tls = "off"` and one with
        "required", shared pooled sessions, and mail for the second went out in plaintext."""
        base = f"{self.source}:{self.host}:{self.port}:{self.tls}:{int(self.verify)}"
        if self.mta_sts:
            base += f":sts-{self.mta_sts}"
        if not self.username:
            return base
        secret = hashlib.sha256((self.password or "").encode()).hexdigest()[:16]
        return f"{base}:{self.username}:{secret}"


def parse_host_port(value: str, default_port: int = 25) -> tuple[str, int]:
    """ "host", "host:port" or "[v6]:port" -> (host, port). Raises ValueError when malformed."""
    value = value.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad host:port {value!r}")
        port_text = rest[1:] if rest else ""
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    if not host:
        raise ValueError(f"bad host:port {value!r}")
    port = int(port_text) if port_text else default_port
    if not 1 <= port <= 65535:
        raise ValueError(f"bad port in {value!r}")
    return host.lower(), port


@lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """A domain as routes are keyed: lowercase, no trailing dot, IDN in its A-label form, so
    a route for `xn--bcher-kva.example` serves `bücher.example` and the other way round."""
    name = domain.strip().rstrip(".").lower()
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return name


class Router:
    """Turns a recipient domain into an ordered list of destinations."""

    def __init__(self, settings: DeliverySettings, resolver: MxResolver,
                 policies: MtaStsPolicies | None = None) -> None:
        self._settings = settings
        self._resolver = resolver
        self.policies = policies  # None: MTA-STS is off ([delivery] mta_sts = false)
        # Parse once, so a bad route fails at start-up and not on the first message.
        self._routes: dict[str, Destination] = {
            ascii_domain(domain): self._route_destination(value)
            for domain, value in settings.routes.items()
        }

    def static_route(self, domain: str) -> Destination | None:
        """The configured route for `domain`: exact domain first, then "*"."""
        return self._routes.get(ascii_domain(domain)) or self._routes.get("*")

    async def route(self, domain: str) -> list[Destination]:
        """Destinations to try in order. DNS errors (DnsPermanentError, DnsTemporaryError)
        and MtaStsRefused propagate: the caller classifies them."""
        static = self.static_route(domain)
        if static is not None:
            return [static]
        mx = await self._resolver.resolve_mx(domain)
        hosts, mode = await self._mta_sts(ascii_domain(domain), mx)
        return [
            Destination(
                host=h.host,
                port=self._settings.mx_port,
                tls="required" if mode == "enforce" else self._settings.tls,
                verify=mode == "enforce",  # without MTA-STS (no DANE) certificates are not
                source="mx",               # checked: RFC 7435 opportunistic TLS
                preference=h.preference,
                mta_sts=mode,
            )
            for h in hosts
        ]

    async def _mta_sts(self, name: str, mx: MxResult
                       ) -> tuple[tuple[MxHost, ...], Literal["", "enforce", "testing"]]:
        """The MX hosts to try and the domain's MTA-STS mode ("": no policy in force)."""
        policies = self.policies
        if policies is None or name.startswith("["):  # no policy for address literals
            return mx.hosts, ""
        policy = await policies.policy(name)
        if policy is None or policy.mode == "none":
            return mx.hosts, ""
        # Policies and certificates name hosts in A-label form (an implicit MX is the
        # recipient domain itself, as written: it may be a U-label one).
        all_hosts = tuple(MxHost(ascii_domain(h.host), h.preference) for h in mx.hosts)
        if policy.mode == "testing":
            for h in all_hosts:
                if not policy.matches(h.host):
                    policies.warn(f"mx:{name}:{h.host}", "MTA-STS policy of %s (testing): MX "
                                  "host %s does not match; enforce mode would not deliver "
                                  "there", name, h.host)
            return all_hosts, "testing"
        hosts = tuple(h for h in all_hosts if policy.matches(h.host))
        if not hosts:
            raise MtaStsRefused(f"MTA-STS policy of {name}: no MX host matches the policy "
                                f"({', '.join(mx.names)})")
        return hosts, "enforce"

    def _route_destination(self, value: str | RouteSettings) -> Destination:
        if isinstance(value, str):
            host, port = parse_host_port(value)
            return Destination(host=host, port=port, tls=self._settings.tls, source="route")
        return Destination(
            host=value.host.strip().lower(),
            port=value.port,
            tls=value.tls,
            verify=value.verify,
            username=value.username,
            password=value.password,
            source="route",
        )
