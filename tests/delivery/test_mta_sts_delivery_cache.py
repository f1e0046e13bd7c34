"""MTA-STS inside the delivery engine, with real parts (`mta_sts_harness`): testing mode, no
record, the policy cache (reuse, a new id noticed in the background, a failed fetch keeps the
cached policy in force) and `mta_sts = false`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.delivery.mta_sts_harness import ENFORCE, Deliveries, World, make_world, run, status

from postroom.delivery.grouping import by_destination
from postroom.delivery.mta_sts_policies import MtaStsPolicies


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as w:
        yield w


def sts(d: Deliveries) -> MtaStsPolicies:
    policies = d.service.domains.router.policies
    assert policies is not None
    return policies


def test_testing_mode_delivers_as_usual_and_says_what_enforce_would_refuse(
        world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    testing = "version: STSv1\nmode: testing\nmax_age: 600\n"
    world.domain("testing.test", ["mx.plain.test"], testing + "mx: mx.other.test\n")
    world.domain("testing2.test", ["mx.untrusted.test"], testing + "mx: mx.untrusted.test\n")

    async def steps(d: Deliveries) -> None:
        got = await d.send("a@testing.test", "b@testing2.test")
        assert {r.status.value for r in got.values()} == {"delivered"}

    with caplog.at_level(logging.WARNING, logger="postroom.delivery"):
        run(tmp_path, world.settings(), steps)
    assert len(world.plain.messages) == 1 and not world.plain.messages[0].tls
    assert len(world.untrusted.messages) == 1 and world.untrusted.messages[0].tls
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("MX host mx.plain.test does not match" in w for w in warnings), warnings
    assert any("mx.plain.test: TLS is required but the server does not offer STARTTLS; "
               "enforce mode would not deliver" in w for w in warnings), warnings
    assert any("mx.untrusted.test: TLS handshake failed: certificate verify failed" in w
               for w in warnings), warnings
    assert not any("mx.untrusted.test does not match" in w for w in warnings)


def test_a_domain_without_a_record_is_delivered_as_usual(world: World, tmp_path: Path) -> None:
    world.domain("nosts.test", ["mx.plain.test"])

    async def steps(d: Deliveries) -> None:
        got = await d.send("a@nosts.test")
        assert got["a@nosts.test"].status.value == "delivered"

    run(tmp_path, world.settings(), steps)
    assert ("_mta-sts.nosts.test", "TXT") in world.dns.queries
    assert world.policies.requests == [] and len(world.plain.messages) == 1


def test_policies_are_cached_and_fetched_again_when_the_id_changes(world: World,
                                                                   tmp_path: Path) -> None:
    world.domain("cached.test", ["mx.cached.test"], ENFORCE + "mx: mx.cached.test\n")

    async def steps(d: Deliveries) -> None:
        for _ in range(2):
            assert (await d.send("a@cached.test"))["a@cached.test"].status.value == "delivered"
        assert world.policies.count("mta-sts.cached.test") == 1  # the second used the cache
        [(_, route, _)] = await by_destination(d.service.domains.router, {"cached.test": []})
        assert isinstance(route, list)  # known at once: a cached policy never waits
        assert [dest.mta_sts for dest in route] == ["enforce"]
        await sts(d).settled()  # the check that lookup started in the background
        world.dns.remove("_mta-sts.cached.test")
        world.dns.add("_mta-sts.cached.test", "TXT", "v=STSv1; id=2")
        world.policies.set("mta-sts.cached.test", ENFORCE + "mx: mx.nowhere.test\n")
        d.service.resolver.clear_cache()  # the TXT's TTL has run out
        # The cached policy applies at once; the record is checked meanwhile and the new id's
        # policy fetched for the batches after this one (RFC 8461 §3.3, §5.1).
        got = status(await d.send("b@cached.test"))["b@cached.test"]
        assert got[0] == "delivered", got
        await sts(d).settled()
        assert world.policies.count("mta-sts.cached.test") == 2
        got = status(await d.send("c@cached.test"))["c@cached.test"]
        assert got[0] == "deferred" and "no MX host matches" in got[1]
        assert world.policies.count("mta-sts.cached.test") == 2

    run(tmp_path, world.settings(), steps)
    assert len(world.good.messages) == 3


def test_a_failed_fetch_keeps_the_cached_policy_in_force(world: World, tmp_path: Path) -> None:
    world.domain("keep.test", ["mx.keep.test"], ENFORCE + "mx: mx.keep.test\n")

    async def steps(d: Deliveries) -> None:
        assert (await d.send("a@keep.test"))["a@keep.test"].status.value == "delivered"
        # A new id whose policy cannot be fetched, and an MX the cached policy does not
        # name (as an attacker who controls DNS would arrange): still enforced.
        world.dns.remove("keep.test", "MX")
        world.dns.add("keep.test", "MX", "10 mx.plain.test.")
        world.dns.remove("_mta-sts.keep.test")
        world.dns.add("_mta-sts.keep.test", "TXT", "v=STSv1; id=2")
        world.policies.set("mta-sts.keep.test", "gone", status=500)
        d.service.resolver.clear_cache()
        got = status(await d.send("b@keep.test"))["b@keep.test"]
        assert got[0] == "deferred" and "no MX host matches" in got[1], got
        await sts(d).settled()  # the new id's fetch, in the background
        assert world.policies.count("mta-sts.keep.test") == 2
        world.dns.remove("_mta-sts.keep.test")  # the record removed: the cache still rules
        d.service.resolver.clear_cache()
        assert status(await d.send("c@keep.test"))["c@keep.test"][0] == "deferred"

    run(tmp_path, world.settings(), steps)
    assert len(world.good.messages) == 1 and world.plain.messages == []


def test_mta_sts_false_looks_nothing_up(world: World, tmp_path: Path) -> None:
    world.domain("off.test", ["mx.plain.test"], ENFORCE + "mx: mx.elsewhere.test\n")

    async def steps(d: Deliveries) -> None:
        assert d.service.domains.router.policies is None
        assert (await d.send("a@off.test"))["a@off.test"].status.value == "delivered"

    run(tmp_path, world.settings(mta_sts=False), steps)
    assert not [q for q in world.dns.queries if q[0].startswith("_mta-sts.")]
    assert world.policies.requests == [] and len(world.plain.messages) == 1
