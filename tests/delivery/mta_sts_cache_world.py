"""What the MTA-STS cache tests share: a DNS stub publishing `_mta-sts` records for DOMAINS, an
HTTPS policy server with a test CA serving POLICY for each, a clock of our own, and the cache
built on them. Test modules import the fixtures from here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.delivery.dns import Resolver
from postroom.delivery.mta_sts_fetch import PolicyFetcher
from postroom.delivery.mta_sts_policies import MtaStsPolicies
from postroom.smtp.tls import client_context
from support.dns_stub import DnsStub
from support.mta_sts_world import PolicyServer, TestCA

POLICY = "version: STSv1\nmode: enforce\nmx: mx.a.test\nmax_age: 1000\n"
DOMAINS = ["a.test", "b.test", "c.test"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


@pytest.fixture
def server(ca: TestCA) -> Iterator[PolicyServer]:
    with PolicyServer(ca.issue(*(f"mta-sts.{d}" for d in DOMAINS))) as srv:
        for d in DOMAINS:
            srv.set(f"mta-sts.{d}", POLICY)
        yield srv


@pytest.fixture
def dns() -> Iterator[DnsStub]:
    records: dict[str, dict[str, list[str] | str]] = {}
    for d in DOMAINS:
        records[f"_mta-sts.{d}"] = {"TXT": "v=STSv1; id=1"}
        records[f"mta-sts.{d}"] = {"A": "127.0.0.1"}
    with DnsStub(records, ttl=0) as stub:  # nothing cached: every change is seen at once
        yield stub


def policies(dns: DnsStub, server: PolicyServer, ca: TestCA, clock: Clock, **kwargs: object
             ) -> MtaStsPolicies:
    resolver = Resolver([dns.address], timeout=0.5, lifetime=1.0)
    fetch = PolicyFetcher(resolver, client_context(True, cafile=ca.cafile), port=server.port,
                          timeout=2.0)
    return MtaStsPolicies(resolver, fetch, clock=clock, **kwargs)  # type: ignore[arg-type]
