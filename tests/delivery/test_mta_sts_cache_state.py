"""The MTA-STS policy cache's own state, against a real DNS stub and HTTPS server (test CA) and
a clock of our own: a failed fetch is logged once (not per waiting caller, not every retry), a
fetch outlives callers who gave up on it, an older `id`'s late fetch does not replace a newer
policy, and what is remembered is bounded in size."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from tests.delivery.mta_sts_cache_world import (
    DOMAINS,
    Clock,
    policies,
)

from postroom.delivery.dns import Resolver
from postroom.delivery.mta_sts import Policy
from postroom.delivery.mta_sts_policies import MtaStsPolicies
from support.dns_stub import DnsStub
from support.mta_sts_world import PolicyServer, TestCA


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.WARNING and text in
               r.getMessage())


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never came true")


def test_a_failed_fetch_is_logged_once_per_fetch_and_once_an_hour(
        dns: DnsStub, server: PolicyServer, ca: TestCA, caplog: pytest.LogCaptureFixture) -> None:
    server.set("mta-sts.a.test", "busy", status=503)
    clock = Clock()
    cache = policies(dns, server, ca, clock, retry_seconds=300.0)

    async def main() -> None:
        found = await asyncio.gather(*(cache.policy("a.test") for _ in range(8)))
        assert set(found) == {None}
        assert warnings(caplog, "could not be fetched") == 1  # one fetch, eight callers
        for _ in range(59):  # a batch a minute: fetched again every 5 minutes, quietly
            clock.now += 60
            assert await cache.policy("a.test") is None
        assert warnings(caplog, "could not be fetched") == 1
        clock.now += 60  # an hour later it is worth saying again
        await cache.policy("a.test")
        assert warnings(caplog, "could not be fetched") == 2

    with caplog.at_level(logging.DEBUG, logger="postroom.delivery"):
        asyncio.run(main())
    assert server.count("mta-sts.a.test") == 13


def test_a_fetch_whose_callers_all_gave_up_is_kept(dns: DnsStub, server: PolicyServer,
                                                    ca: TestCA) -> None:
    cache = policies(dns, server, ca, Clock())

    async def main() -> None:
        waiting = asyncio.ensure_future(cache.policy("a.test"))
        await until(lambda: server.count("mta-sts.a.test") == 1)
        waiting.cancel()  # e.g. the batch's deadline; the fetch goes on
        await cache.settled()
        assert await cache.policy("a.test") == Policy("enforce", ("mx.a.test",), 1000)

    asyncio.run(main())
    assert server.count("mta-sts.a.test") == 1


def test_a_late_fetch_for_an_older_id_does_not_replace_a_newer_policy(dns: DnsStub) -> None:
    old, new = Policy("enforce", ("mx.old.test",), 1000), Policy("enforce", ("mx.new.test",), 1000)
    gate = asyncio.Event()
    calls: list[str] = []

    async def fetch(domain: str) -> Policy:  # the first fetch (id 1) ends last
        calls.append(domain)
        if len(calls) == 1:
            await gate.wait()
            return old
        return new

    resolver = Resolver([dns.address], timeout=0.5, lifetime=1.0)
    cache = MtaStsPolicies(resolver, fetch, clock=Clock())

    async def main() -> None:
        first = asyncio.ensure_future(cache.policy("a.test"))
        await until(lambda: len(calls) == 1)
        dns.remove("_mta-sts.a.test")
        dns.add("_mta-sts.a.test", "TXT", "v=STSv1; id=2")
        assert await cache.policy("a.test") == new
        gate.set()
        assert await first == new  # id 1's policy came too late: id 2 is the latest seen
        assert await cache.policy("a.test") == new

    asyncio.run(main())
    assert len(calls) == 2


def test_what_is_remembered_is_bounded_in_size(dns: DnsStub, server: PolicyServer, ca: TestCA,
                                               caplog: pytest.LogCaptureFixture) -> None:
    for d in DOMAINS:
        server.set(f"mta-sts.{d}", "busy", status=503)
    cache = policies(dns, server, ca, Clock(), max_entries=2)

    async def main() -> None:
        for d in DOMAINS:  # three failed fetches, room for two: a.test's is forgotten
            assert await cache.policy(d) is None
        assert await cache.policy("a.test") is None
        assert await cache.policy("c.test") is None  # still remembered: not fetched again

    with caplog.at_level(logging.WARNING, logger="postroom.delivery"):
        asyncio.run(main())
        for key in ("x", "y", "z", "x"):  # the warnings' memory, likewise
            cache.warn(key, "note %s", key)
    assert [server.count(f"mta-sts.{d}") for d in DOMAINS] == [2, 1, 1]
    assert warnings(caplog, "note x") == 2
