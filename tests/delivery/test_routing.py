"""Routes from settings win over DNS; otherwise each MX host at mx_port with the global TLS mode."""

from __future__ import annotations

import asyncio

import pytest

from postroom.config.settings import DeliverySettings
from postroom.delivery.dns import DnsPermanentError, MxHost, MxResult, Resolver
from postroom.delivery.routing import Destination, Router, parse_host_port


class FakeResolver:
    def __init__(self, hosts: dict[str, tuple[MxHost, ...]]) -> None:
        self.hosts = hosts
        self.asked: list[str] = []

    async def resolve_mx(self, domain: str) -> MxResult:
        self.asked.append(domain)
        if domain not in self.hosts:
            raise DnsPermanentError(domain, f"Domain {domain} does not exist (NXDOMAIN)")
        return MxResult(domain, self.hosts[domain])


MX = FakeResolver({"example.com": (MxHost("mx1.example.com", 10), MxHost("mx2.example.com", 20))})


def route(router: Router, domain: str) -> list[Destination]:
    return asyncio.run(router.route(domain))


def test_mx_destinations_use_mx_port_and_global_tls() -> None:
    router = Router(DeliverySettings(mx_port=2525, tls="required"), MX)
    dests = route(router, "example.com")
    assert [(d.host, d.port, d.tls, d.verify, d.preference) for d in dests] == [
        ("mx1.example.com", 2525, "required", False, 10),
        ("mx2.example.com", 2525, "required", False, 20),
    ]
    assert dests[0].key == "mx:mx1.example.com:2525:required:0"
    assert dests[0].source == "mx"


def test_string_route_wins_over_dns() -> None:
    resolver = FakeResolver({})
    router = Router(DeliverySettings(routes={"Example.COM": "relay.local:2526"}), resolver)
    (dest,) = route(router, "example.com.")
    assert (dest.host, dest.port, dest.tls, dest.source) == (
        "relay.local",
        2526,
        "opportunistic",
        "route",
    )
    assert dest.key == "route:relay.local:2526:opportunistic:0"
    assert resolver.asked == []


def test_exact_domain_beats_wildcard() -> None:
    settings = DeliverySettings(routes={"*": "smarthost.local:587", "special.test": "[::1]:2527"})
    router = Router(settings, MX)
    assert route(router, "special.test")[0].host == "::1"
    assert route(router, "special.test")[0].port == 2527
    assert route(router, "example.com")[0].host == "smarthost.local"
    assert route(router, "anything.else")[0].port == 587


def test_table_route_carries_credentials_and_tls() -> None:
    settings = DeliverySettings(
        routes={
            "*": {
                "host": "Relay.Provider.test",
                "port": 465,
                "username": "apikey",
                "password": "s3cret",
                "tls": "required",
                "verify": True,
            }
        }
    )
    (dest,) = route(Router(settings, MX), "example.com")
    assert (dest.host, dest.port, dest.tls, dest.verify) == (
        "relay.provider.test",
        465,
        "required",
        True,
    )
    assert (dest.username, dest.password) == ("apikey", "s3cret")
    assert dest.key.startswith("route:relay.provider.test:465:required:1:apikey:")
    assert "s3cret" not in repr(dest)


def test_string_route_takes_the_global_tls_mode() -> None:
    settings = DeliverySettings(routes={"*": "relay.local"}, tls="off")
    (dest,) = route(Router(settings, MX), "x.test")
    assert (dest.port, dest.tls) == (25, "off")


def test_bad_routes_fail_at_start_up() -> None:
    for bad in ["relay:notaport", "relay:0", ":25", "[::1", "[::1]x"]:
        with pytest.raises(ValueError):
            Router(DeliverySettings(routes={"*": bad}), MX)


def test_dns_errors_propagate() -> None:
    with pytest.raises(DnsPermanentError):
        route(Router(DeliverySettings(), MX), "nowhere.test")


def test_static_route_lookup() -> None:
    router = Router(DeliverySettings(routes={"a.test": "h:1"}), MX)
    assert router.static_route("A.test") is not None
    assert router.static_route("b.test") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host", ("host", 25)),
        ("Host:2525", ("host", 2525)),
        ("127.0.0.1:26", ("127.0.0.1", 26)),
        ("[::1]:27", ("::1", 27)),
        ("[::1]", ("::1", 25)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


def test_router_with_real_resolver(resolver: Resolver) -> None:
    router = Router(DeliverySettings(), resolver)
    dests = route(router, "implicit.test")
    assert [(d.host, d.port) for d in dests] == [("implicit.test", 25)]
