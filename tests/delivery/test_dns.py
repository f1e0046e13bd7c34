"""The delivery resolver against a real DNS server on loopback (the stub)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from postroom.config.settings import DeliverySettings
from postroom.delivery.dns import (
    DnsPermanentError,
    DnsTemporaryError,
    MxHost,
    Resolver,
    parse_nameserver,
)
from support.dns_stub import DnsStub

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """No pytest-asyncio here: each test drives its own loop."""
    return asyncio.run(coro)


def test_mx_hosts_come_in_preference_order(resolver: Resolver) -> None:
    result = run(resolver.resolve_mx("example.com"))
    assert not result.implicit
    assert sorted(result.names[:2]) == ["mx1.example.com", "mx2.example.com"]
    assert result.hosts[2] == MxHost("backup.example.net", 20)
    assert [h.preference for h in result.hosts] == [10, 10, 20]


def test_equal_preferences_are_shuffled(dns_stub: DnsStub) -> None:
    orders = set()
    for seed in range(20):
        r = Resolver([dns_stub.address], rng=random.Random(seed))
        orders.add(tuple(run(r.resolve_mx("example.com")).names))
    assert orders == {
        ("mx1.example.com", "mx2.example.com", "backup.example.net"),
        ("mx2.example.com", "mx1.example.com", "backup.example.net"),
    }


def test_domain_names_are_normalised(resolver: Resolver) -> None:
    result = run(resolver.resolve_mx(" EXAMPLE.com. "))
    assert result.domain == "example.com"
    assert len(result.hosts) == 3


def test_no_mx_means_the_domain_itself(resolver: Resolver) -> None:
    result = run(resolver.resolve_mx("implicit.test"))
    assert result.implicit
    assert result.hosts == (MxHost("implicit.test", 0),)
    assert run(resolver.resolve_mx("v6only.test")).implicit


def test_no_mx_and_no_address_is_permanent(resolver: Resolver) -> None:
    with pytest.raises(DnsPermanentError, match="no MX or address records"):
        run(resolver.resolve_mx("txtonly.test"))


def test_null_mx_is_permanent(resolver: Resolver) -> None:
    with pytest.raises(DnsPermanentError, match=r"does not accept mail \(null MX\)") as info:
        run(resolver.resolve_mx("nullmx.test"))
    assert info.value.name == "nullmx.test"


def test_nxdomain_is_permanent(resolver: Resolver) -> None:
    with pytest.raises(DnsPermanentError, match=r"does not exist \(NXDOMAIN\)"):
        run(resolver.resolve_mx("no-such-domain.test"))


def test_servfail_is_temporary(resolver: Resolver) -> None:
    with pytest.raises(DnsTemporaryError, match="failed to answer"):
        run(resolver.resolve_mx("broken.test"))


def test_timeout_is_temporary_and_bounded(resolver: Resolver) -> None:
    started = time.monotonic()
    with pytest.raises(DnsTemporaryError, match="timed out"):
        run(resolver.resolve_mx("slow.test"))
    assert time.monotonic() - started < 3


def test_no_server_listening_is_temporary() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = Resolver([f"127.0.0.1:{port}"], timeout=0.2, lifetime=0.5)
    with pytest.raises(DnsTemporaryError):
        run(r.resolve_mx("example.com"))


def test_invalid_names_are_permanent(resolver: Resolver) -> None:
    for bad in ["", "a..b", "x" * 300]:
        with pytest.raises(DnsPermanentError, match="Invalid domain"):
            run(resolver.resolve_mx(bad))


def test_address_literal_domain(resolver: Resolver) -> None:
    result = run(resolver.resolve_mx("[192.0.2.7]"))
    assert result.hosts == (MxHost("192.0.2.7", 0),)


def test_addresses_v4_first_then_v6(resolver: Resolver) -> None:
    assert run(resolver.resolve_addresses("mx1.example.com")) == ["127.0.0.1", "::1"]
    assert run(resolver.resolve_addresses("v6only.test")) == ["::1"]
    assert run(resolver.resolve_addresses("192.0.2.1")) == ["192.0.2.1"]
    assert run(resolver.resolve_addresses("[IPv6:::1]")) == ["::1"]


def test_addresses_follow_cnames(resolver: Resolver) -> None:
    assert run(resolver.resolve_addresses("backup.example.net")) == ["127.0.0.3"]


def test_addresses_nodata_and_nxdomain(resolver: Resolver) -> None:
    assert run(resolver.resolve_addresses("txtonly.test")) == []
    with pytest.raises(DnsPermanentError, match="NXDOMAIN"):
        run(resolver.resolve_addresses("nope.test"))
    with pytest.raises(DnsTemporaryError):
        run(resolver.resolve_addresses("broken.test"))


def test_txt_joins_strings_of_long_records(resolver: Resolver) -> None:
    (key,) = run(resolver.txt("sel._domainkey.example.com"))
    assert key == "v=DKIM1; k=rsa; p=" + "A" * 392  # published as two strings
    assert sorted(run(resolver.txt("example.com")))[1].startswith("v=spf1")


def test_txt_absent_is_empty(resolver: Resolver) -> None:
    assert run(resolver.txt("nothing.test")) == []  # NXDOMAIN
    assert run(resolver.txt("_domainkey.example.com")) == []  # empty non-terminal: NODATA
    assert run(resolver.txt("mx2.example.com")) == []  # NODATA


def test_answers_too_big_for_udp_come_over_tcp(dns_stub: DnsStub, resolver: Resolver) -> None:
    big = ["x" * 250 + str(i) for i in range(12)]
    for value in big:
        dns_stub.add("big.test", "TXT", value)
    assert sorted(run(resolver.txt("big.test"))) == sorted(big)


def test_cache_answers_repeat_questions(dns_stub: DnsStub, resolver: Resolver) -> None:
    run(resolver.resolve_mx("example.com"))
    run(resolver.resolve_mx("example.com"))
    run(resolver.txt("nothing.test"))
    run(resolver.txt("nothing.test"))
    assert dns_stub.queries.count(("example.com", "MX")) == 1
    assert dns_stub.queries.count(("nothing.test", "TXT")) == 1


def test_cache_respects_ttl(dns_stub: DnsStub) -> None:
    now = [1000.0]
    r = Resolver([dns_stub.address], clock=lambda: now[0])
    dns_stub.add("short.test", "A", "127.0.0.9", ttl=30)
    assert run(r.resolve_addresses("short.test")) == ["127.0.0.9"]
    dns_stub.remove("short.test")
    dns_stub.add("short.test", "A", "127.0.0.8", ttl=30)
    now[0] += 29
    assert run(r.resolve_addresses("short.test")) == ["127.0.0.9"]  # still cached
    now[0] += 2
    assert run(r.resolve_addresses("short.test")) == ["127.0.0.8"]  # expired, asked again


def test_zero_ttl_and_failures_are_not_cached(dns_stub: DnsStub, resolver: Resolver) -> None:
    dns_stub.add("zero.test", "TXT", "a", ttl=0)
    run(resolver.txt("zero.test"))
    run(resolver.txt("zero.test"))
    assert dns_stub.queries.count(("zero.test", "TXT")) == 2
    with pytest.raises(DnsTemporaryError):
        run(resolver.resolve_mx("broken.test"))
    dns_stub.set_servfail("broken.test", False)
    dns_stub.add("broken.test", "MX", "5 mx1.example.com.")
    assert run(resolver.resolve_mx("broken.test")).names == ["mx1.example.com"]


def test_cache_is_bounded(dns_stub: DnsStub) -> None:
    r = Resolver([dns_stub.address], max_entries=2)
    for name in ["a.test", "b.test", "c.test"]:
        run(r.txt(name))
    run(r.txt("a.test"))
    assert dns_stub.queries.count(("a.test", "TXT")) == 2


def test_from_settings_uses_configured_nameservers(dns_stub: DnsStub) -> None:
    settings = DeliverySettings(nameservers=f"{dns_stub.address}")
    r = Resolver.from_settings(settings, timeout=0.5)
    assert run(r.txt("txtonly.test")) == ["hello"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
        ("::1", ("::1", 53)),
        (" 10.0.0.1 ", ("10.0.0.1", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


def test_stub_zone_text_and_servfail_toggle() -> None:
    zone = """
    $TTL 60
    mail.test.  IN MX 10 mx.mail.test.
    mx.mail.test. IN A 127.0.0.5
    """
    with DnsStub(zone_text=zone) as stub:
        r = Resolver([stub.address], timeout=0.3, lifetime=0.6)
        assert run(r.resolve_mx("mail.test")).names == ["mx.mail.test"]
        stub.set_servfail("mx.mail.test")
        with pytest.raises(DnsTemporaryError):
            run(r.resolve_addresses("mx.mail.test"))
