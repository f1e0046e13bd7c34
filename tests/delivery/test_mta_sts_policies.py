"""The MTA-STS fetch and cache against a real DNS stub and HTTPS server (test CA), with a
clock of our own for max_age and the retry pause: what is fetched, when, and what is refused."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from tests.delivery.mta_sts_cache_world import (
    POLICY,
    Clock,
)

from postroom.delivery.dns import Resolver
from postroom.delivery.mta_sts import Policy
from postroom.delivery.mta_sts_fetch import FetchError, PolicyFetcher
from postroom.delivery.mta_sts_policies import MIN_CACHE_SECONDS, MtaStsPolicies
from postroom.delivery.routing import Destination
from postroom.smtp.tls import client_context
from support.dns_stub import DnsStub
from support.mta_sts_world import PolicyServer, TestCA


def policies(dns: DnsStub, server: PolicyServer, cafile: Path, clock: Clock
             ) -> MtaStsPolicies:
    resolver = Resolver([dns.address], timeout=0.5, lifetime=1.0)
    fetch = PolicyFetcher(resolver, client_context(True, cafile=cafile), port=server.port,
                          timeout=2.0)
    return MtaStsPolicies(resolver, fetch, clock=clock, retry_seconds=300.0)


def test_a_policy_is_kept_for_its_max_age_then_fetched_again(
        dns: DnsStub, server: PolicyServer, ca: TestCA) -> None:
    clock = Clock()
    cache = policies(dns, server, ca.cafile, clock)

    async def main() -> None:
        first = await cache.policy("a.test")
        assert first == Policy("enforce", ("mx.a.test",), 1000)
        clock.now += 999
        assert await cache.policy("a.test") == first
        assert server.count("mta-sts.a.test") == 1
        clock.now += 2  # max_age is over: fetched again although the id is the same
        assert await cache.policy("a.test") == first
        assert server.count("mta-sts.a.test") == 2

    asyncio.run(main())


def test_a_tiny_max_age_still_caches_a_little(dns: DnsStub, server: PolicyServer,
                                              ca: TestCA) -> None:
    server.set("mta-sts.a.test", POLICY.replace("1000", "0"))
    clock = Clock()
    cache = policies(dns, server, ca.cafile, clock)

    async def main() -> None:
        for _ in range(3):
            assert (await cache.policy("a.test")) is not None
        clock.now += MIN_CACHE_SECONDS + 1
        await cache.policy("a.test")

    asyncio.run(main())
    assert server.count("mta-sts.a.test") == 2


def test_a_failed_fetch_is_not_repeated_at_once(dns: DnsStub, server: PolicyServer,
                                                ca: TestCA) -> None:
    server.set("mta-sts.a.test", "busy", status=503)
    clock = Clock()
    cache = policies(dns, server, ca.cafile, clock)

    async def main() -> None:
        assert await cache.policy("a.test") is None  # nothing cached: no policy
        assert await cache.policy("a.test") is None
        assert server.count("mta-sts.a.test") == 1
        dns.remove("_mta-sts.a.test")
        dns.add("_mta-sts.a.test", "TXT", "v=STSv1; id=2")  # a new id is worth a try
        server.set("mta-sts.a.test", POLICY)
        assert await cache.policy("a.test") is not None
        assert server.count("mta-sts.a.test") == 2

    asyncio.run(main())


def test_concurrent_lookups_share_one_fetch(dns: DnsStub, server: PolicyServer,
                                            ca: TestCA) -> None:
    cache = policies(dns, server, ca.cafile, Clock())

    async def main() -> None:
        found = await asyncio.gather(*(cache.policy("b.test") for _ in range(5)))
        assert len({p for p in found}) == 1 and found[0] is not None

    asyncio.run(main())
    assert server.count("mta-sts.b.test") == 1


def test_an_invalid_record_or_a_policy_of_mode_none(dns: DnsStub, server: PolicyServer,
                                                    ca: TestCA) -> None:
    dns.remove("_mta-sts.a.test")
    dns.add("_mta-sts.a.test", "TXT", "v=STSv1; id=1")
    dns.add("_mta-sts.a.test", "TXT", "v=STSv1; id=2")  # two records: no available policy
    server.set("mta-sts.b.test", "version: STSv1\nmode: none\nmax_age: 100\n")
    cache = policies(dns, server, ca.cafile, Clock())

    async def main() -> None:
        assert await cache.policy("a.test") is None
        assert await cache.policy("b.test") == Policy("none", (), 100)

    asyncio.run(main())
    assert server.count("mta-sts.a.test") == 0


@pytest.mark.parametrize("answer, reason", [
    ({"status": 404}, "HTTP 404"),
    ({"status": 301, "headers": {"Location": "https://mta-sts.b.test/.well-known/mta-sts.txt"}},
     "HTTP 301"),  # redirects are not followed
    ({"content_type": "text/html"}, "not text/plain"),
    ({"body": POLICY + "x-pad: " + "y" * 70_000 + "\n"}, "larger than 64 KiB"),
    ({"body": "version: STSv1\nmode: enforce\n"}, "invalid policy"),
])
def test_fetch_refusals(dns: DnsStub, server: PolicyServer, ca: TestCA,
                        answer: dict[str, object], reason: str) -> None:
    body = answer.pop("body", POLICY)
    server.set("mta-sts.a.test", body, **answer)  # type: ignore[arg-type]
    resolver = Resolver([dns.address], timeout=0.5, lifetime=1.0)
    fetch = PolicyFetcher(resolver, client_context(True, cafile=ca.cafile), port=server.port)
    with pytest.raises(FetchError, match=reason):
        asyncio.run(fetch("a.test"))


def test_fetch_checks_the_certificate(dns: DnsStub, server: PolicyServer, tmp_path: Path,
                                      ca: TestCA) -> None:
    resolver = Resolver([dns.address], timeout=0.5, lifetime=1.0)
    (tmp_path / "other").mkdir()
    other = TestCA(tmp_path / "other")  # a CA that did not sign the server's certificate
    with pytest.raises(FetchError, match="certificate not valid"):
        asyncio.run(PolicyFetcher(resolver, client_context(True, cafile=other.cafile),
                                  port=server.port)("a.test"))
    dns.add("mta-sts.elsewhere.test", "A", "127.0.0.1")  # served, but not in the certificate
    server.set("mta-sts.elsewhere.test", POLICY)
    with pytest.raises(FetchError, match="certificate not valid"):
        asyncio.run(PolicyFetcher(resolver, client_context(True, cafile=ca.cafile),
                                  port=server.port)("elsewhere.test"))
    assert [h for h, _ in server.requests] == []
    dns.remove("mta-sts.c.test")
    with pytest.raises(FetchError, match="does not exist"):
        asyncio.run(PolicyFetcher(resolver, client_context(True, cafile=ca.cafile),
                                  port=server.port)("c.test"))


def test_the_mta_sts_mode_is_part_of_the_pool_key() -> None:
    """A session opened without verification (no policy, testing mode) must never be handed
    to an enforce-mode destination of the same host, and the other way round."""
    plain = Destination("mx.a.test", 25, "opportunistic")
    testing = Destination("mx.a.test", 25, "opportunistic", mta_sts="testing")
    enforce = Destination("mx.a.test", 25, "required", verify=True, mta_sts="enforce")
    assert len({plain.key, testing.key, enforce.key}) == 3
    assert plain.key == "mx:mx.a.test:25:opportunistic:0"  # unchanged without a policy


def test_a_silent_policy_server_is_given_up_on_in_time(dns: DnsStub, ca: TestCA) -> None:
    resolver = Resolver([dns.address], timeout=0.5, lifetime=1.0)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects, never says a word
        fetch = PolicyFetcher(resolver, client_context(True, cafile=ca.cafile),
                              port=silent.getsockname()[1], timeout=0.5)
        started = time.monotonic()
        with pytest.raises(FetchError):
            asyncio.run(fetch("a.test"))
    assert time.monotonic() - started < 3.0
