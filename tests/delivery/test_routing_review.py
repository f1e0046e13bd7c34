"""Routing and client details found by a review (each test failed before its fix): pooled
sessions shared across TLS policies, IPv6 literals as stored (lowercase), name servers given
by name, IDN route keys, and a hostile SIZE keyword."""

from __future__ import annotations

import asyncio

from postroom.config.settings import DeliverySettings
from postroom.delivery.dns import Resolver
from postroom.delivery.routing import Router
from postroom.smtp.client_protocol import Capabilities
from support.dns_stub import DnsStub


def test_routes_that_differ_in_tls_never_share_a_session() -> None:
    settings = DeliverySettings(routes={
        "plain.test": {"host": "127.0.0.1", "port": 2525, "tls": "off"},
        "secure.test": {"host": "127.0.0.1", "port": 2525, "tls": "required"},
        "checked.test": {"host": "127.0.0.1", "port": 2525, "tls": "required", "verify": True},
        "a.test": {"host": "127.0.0.1", "port": 2525, "tls": "required", "username": "u",
                   "password": "one"},
        "b.test": {"host": "127.0.0.1", "port": 2525, "tls": "required", "username": "u",
                   "password": "two"},
    })
    router = Router(settings, None)  # type: ignore[arg-type]
    keys = [router.static_route(d).key for d in  # type: ignore[union-attr]
            ("plain.test", "secure.test", "checked.test", "a.test", "b.test")]
    assert len(set(keys)) == 5, keys
    assert not any("one" in k or "two" in k for k in keys)  # no password in a key (or a log)


def test_ipv6_literals_as_stored_need_no_dns() -> None:
    resolver = Resolver(["127.0.0.1:9"], timeout=0.2, lifetime=0.3)  # nothing listens there
    for domain in ("[IPv6:::1]", "[ipv6:::1]", "[127.0.0.1]"):
        found = asyncio.run(resolver.resolve_mx(domain))
        assert [h.host for h in found.hosts] in (["::1"], ["127.0.0.1"]), (domain, found)


def test_a_name_server_given_by_name() -> None:
    with DnsStub({"named.test": {"MX": ["10 mx.named.test."]},
                  "mx.named.test": {"A": "127.0.0.1"}}) as stub:
        resolver = Resolver([f"localhost:{stub.port}"], timeout=0.5, lifetime=1.0)
        found = asyncio.run(resolver.resolve_mx("named.test"))
    assert [h.host for h in found.hosts] == ["mx.named.test"]


def test_routes_match_across_idn_forms() -> None:
    settings = DeliverySettings(routes={"xn--bcher-kva.example": "127.0.0.1:2526",
                                        "münchen.example": "127.0.0.1:2527"})
    router = Router(settings, None)  # type: ignore[arg-type]
    assert router.static_route("bücher.example").port == 2526  # type: ignore[union-attr]
    assert router.static_route("BÜCHER.example.").port == 2526  # type: ignore[union-attr]
    assert router.static_route("xn--mnchen-3ya.example").port == 2527  # type: ignore[union-attr]
    assert router.static_route("other.example") is None


def test_a_size_keyword_that_is_no_ascii_number_is_no_limit() -> None:
    caps = Capabilities(keywords={"SIZE": ("²",)})
    assert caps.size_supported and caps.size_limit is None
