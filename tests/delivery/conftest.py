"""A DNS stub per test, serving a small world of domains the delivery tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.delivery.mta_sts_cache_world import ca, dns, server  # noqa: F401 (fixtures)

from postroom.delivery.dns import Resolver
from support.dns_stub import DnsStub

WORLD: dict[str, dict[str, list[str] | str]] = {
    "example.com": {
        "MX": ["10 mx1.example.com.", "10 mx2.example.com.", "20 backup.example.net."],
        "A": "192.0.2.10",
        "TXT": ["v=spf1 a:mail.postroom.test ~all", "google-site-verification=abc"],
    },
    "mx1.example.com": {"A": "127.0.0.1", "AAAA": "::1"},
    "mx2.example.com": {"A": "127.0.0.2"},
    "backup.example.net": {"CNAME": "real-backup.example.net."},
    "real-backup.example.net": {"A": "127.0.0.3"},
    "implicit.test": {"A": "127.0.0.4", "AAAA": "::1"},
    "v6only.test": {"AAAA": "::1"},
    "nullmx.test": {"MX": "0 ."},
    "txtonly.test": {"TXT": "hello"},
    "sel._domainkey.example.com": {"TXT": "v=DKIM1; k=rsa; p=" + "A" * 392},
}


@pytest.fixture
def dns_stub() -> Iterator[DnsStub]:
    with DnsStub(WORLD, servfail=["broken.test"], drop=["slow.test"]) as stub:
        yield stub


@pytest.fixture
def resolver(dns_stub: DnsStub) -> Resolver:
    return Resolver([dns_stub.address], timeout=0.3, lifetime=0.6)
