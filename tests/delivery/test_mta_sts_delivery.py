"""MTA-STS enforce mode inside the delivery engine, with real parts (`mta_sts_harness`): only
matching MX hosts, only over TLS verified for their names, otherwise deferred and nothing sent;
and no session opened without verification is ever reused under a policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.delivery.mta_sts_harness import ENFORCE, Deliveries, World, make_world, run, status


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as w:
        yield w


def test_enforce_delivers_over_verified_tls_to_a_matching_mx(world: World, tmp_path: Path
                                                               ) -> None:
    world.domain("good.test", ["mx.good.test"], ENFORCE + "mx: mx.good.test\n")
    world.domain("wild.test", ["a.mx.wild.test"], ENFORCE + "mx: *.mx.wild.test\n")

    async def steps(d: Deliveries) -> None:
        got = await d.send("a@good.test", "b@wild.test")
        assert {a: s for a, (s, _) in status(got).items()} == {
            "a@good.test": "delivered", "b@wild.test": "delivered"}

    run(tmp_path, world.settings(tls="off"), steps)  # enforce wins over tls = off
    assert [m.tls for m in world.good.messages] == [True, True]
    assert world.policies.count("mta-sts.good.test") == 1


def test_enforce_defers_when_no_mx_matches_and_sends_nothing(world: World, tmp_path: Path
                                                             ) -> None:
    world.domain("nomatch.test", ["mx.good.test"], ENFORCE + "mx: mx.elsewhere.test\n")

    async def steps(d: Deliveries) -> None:
        state, reply = status(await d.send("a@nomatch.test"))["a@nomatch.test"]
        assert state == "deferred"
        assert reply.startswith("4.7.5 MTA-STS policy of nomatch.test: no MX host matches")

    run(tmp_path, world.settings(), steps)
    assert world.sent() == 0


def test_enforce_defers_without_starttls_or_with_an_untrusted_or_misnamed_cert(
        world: World, tmp_path: Path) -> None:
    world.domain("plain.test", ["mx.plain.test"], ENFORCE + "mx: mx.plain.test\n")
    world.domain("untrusted.test", ["mx.untrusted.test"], ENFORCE + "mx: mx.untrusted.test\n")
    world.domain("good.test", ["wrongname.good.test"], ENFORCE + "mx: *.good.test\n")

    async def steps(d: Deliveries) -> None:
        got = status(await d.send("a@plain.test", "b@untrusted.test", "c@good.test"))
        assert {s for s, _ in got.values()} == {"deferred"}, got
        assert got["a@plain.test"][1] == (
            "4.7.5 MTA-STS policy: TLS with mx.plain.test could not be verified (TLS is "
            "required but the server does not offer STARTTLS)")
        assert "TLS with mx.untrusted.test could not be verified" in got["b@untrusted.test"][1]
        assert "certificate verify failed" in got["b@untrusted.test"][1]
        assert "TLS with wrongname.good.test could not be verified" in got["c@good.test"][1]

    run(tmp_path, world.settings(), steps)
    assert world.sent() == 0  # never in cleartext, never to an unverified host


def test_enforce_tries_the_next_matching_mx_and_skips_the_others(world: World, tmp_path: Path
                                                                 ) -> None:
    world.domain("fallback.test", ["mx1.fallback.test", "mx2.fallback.test",
                                   "mx3.fallback.test"],
                 ENFORCE + "mx: mx1.fallback.test\nmx: mx2.fallback.test\n")

    async def steps(d: Deliveries) -> None:
        got = await d.send("a@fallback.test")
        assert got["a@fallback.test"].status.value == "delivered"
        assert got["a@fallback.test"].remote_host == "mx2.fallback.test"

    run(tmp_path, world.settings(), steps)
    assert (len(world.good.messages), len(world.untrusted.messages),
            len(world.plain.messages)) == (1, 0, 0)
    assert world.good.messages[0].tls


def test_a_session_without_a_policy_is_never_reused_under_one(world: World, tmp_path: Path
                                                              ) -> None:
    world.domain("good.test", ["mx.good.test"], ENFORCE + "mx: mx.good.test\n")
    world.domain("loose.test", ["mx.good.test"])

    async def steps(d: Deliveries) -> None:
        assert (await d.send("a@loose.test"))["a@loose.test"].status.value == "delivered"
        assert d.service.pool.idle_count == 1  # an unverified session to mx.good.test
        assert (await d.send("b@good.test"))["b@good.test"].status.value == "delivered"
        assert set(d.service.pool.slots.opened) == {
            f"mx:mx.good.test:{world.mx_port}:opportunistic:0",
            f"mx:mx.good.test:{world.mx_port}:required:1:sts-enforce"}

    run(tmp_path, world.settings(), steps)
