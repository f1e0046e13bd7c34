"""MTA-STS and a `_mta-sts` TXT query that is never answered: a batch waits for it briefly and
once (not the resolver's 8 s, not every batch), and a domain with a cached policy never waits
(the record is checked again in the background, RFC 8461 §3.3, §5.1). Real DNS stub, policy
server and receivers (`mta_sts_harness`); short timeouts so that the tests stay fast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.delivery.mta_sts_harness import ENFORCE, Deliveries, World, make_world, run, status

from postroom.delivery.dns import Resolver
from postroom.delivery.grouping import by_destination
from postroom.delivery.mta_sts_policies import MtaStsPolicies
from support.dns_stub import DnsStub


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as w:
        yield w


def sts(d: Deliveries) -> MtaStsPolicies:
    policies = d.service.domains.router.policies
    assert policies is not None
    policies.txt_timeout = 0.3  # its default, 3 s, is a test's worth of waiting
    return policies


def asked(world: World, domain: str) -> int:
    return world.dns.queries.count((f"_mta-sts.{domain}", "TXT"))


def test_an_unanswered_record_holds_a_batch_briefly_and_only_once(world: World,
                                                                  tmp_path: Path) -> None:
    world.domain("nosts.test", ["mx.plain.test"])
    world.dns.set_drop("_mta-sts.nosts.test")
    world.domain("other.test", ["mx.plain.test"])
    took: list[float] = []

    async def steps(d: Deliveries) -> None:
        sts(d)
        for i in range(3):
            started = time.monotonic()
            got = status(await d.send(f"a{i}@nosts.test", f"b{i}@other.test"))
            took.append(time.monotonic() - started)
            assert {s for s, _ in got.values()} == {"delivered"}, got

    run(tmp_path, world.settings(), steps)
    assert took[0] < 4.0, took  # the lookup's own timeout, not the resolver's lifetime (8 s)
    assert asked(world, "nosts.test") == 1  # the failure is remembered: no wait after it
    assert max(took[1:]) < 4.0, took


def test_a_cached_policy_never_waits_for_the_record(world: World, tmp_path: Path) -> None:
    world.domain("cached.test", ["mx.cached.test"], ENFORCE + "mx: mx.cached.test\n")
    took: list[float] = []

    async def steps(d: Deliveries) -> None:
        policies = sts(d)
        assert (await d.send("a@cached.test"))["a@cached.test"].status.value == "delivered"
        world.dns.set_drop("_mta-sts.cached.test")
        d.service.resolver.clear_cache()  # the TXT's TTL has run out (and the MX's: warm it)
        await d.service.resolver.resolve_mx("cached.test")
        [(_, route, _)] = await by_destination(d.service.domains.router, {"cached.test": []})
        assert isinstance(route, list), route  # known at once, the record checked meanwhile
        assert [dest.mta_sts for dest in route] == ["enforce"]
        for i in range(2):
            started = time.monotonic()
            got = status(await d.send(f"b{i}@cached.test"))[f"b{i}@cached.test"]
            took.append(time.monotonic() - started)
            assert got[0] == "delivered", got
        await policies.settled()

    run(tmp_path, world.settings(), steps)
    assert max(took) < 2.0, took
    assert asked(world, "cached.test") == 2  # the first batch's, then one in the background
    assert len(world.good.messages) == 3 and all(m.tls for m in world.good.messages)


def test_a_failed_lookup_is_asked_again_after_a_while() -> None:
    now = [1000.0]
    with DnsStub({"_mta-sts.a.test": {"TXT": "v=STSv1; id=1"}}, ttl=0) as dns:
        dns.set_drop("_mta-sts.a.test")
        resolver = Resolver([dns.address], timeout=1.0, lifetime=5.0)

        async def no_fetch(domain: str) -> None:
            raise AssertionError("nothing is fetched without a record")

        policies = MtaStsPolicies(resolver, no_fetch, txt_timeout=0.3,  # type: ignore[arg-type]
                                  txt_retry_seconds=120.0, clock=lambda: now[0])

        async def main() -> None:
            assert await policies.policy("a.test") is None
            now[0] += 119
            started = time.monotonic()
            assert await policies.policy("a.test") is None  # remembered: not asked again
            assert time.monotonic() - started < 0.1
            assert dns.queries.count(("_mta-sts.a.test", "TXT")) == 1
            now[0] += 2
            dns.set_drop("_mta-sts.a.test", False)
            dns.remove("_mta-sts.a.test")
            assert await policies.policy("a.test") is None  # asked again: no record now
            assert dns.queries.count(("_mta-sts.a.test", "TXT")) == 2

        asyncio.run(main())
