"""MTA-STS MX sessions inside the delivery engine, with real parts (`mta_sts_harness`): an MX
host named only in its certificate's subject CN is not verified (RFC 8461 §4.2 wants a SAN
DNS-ID), an IDN domain without MX records matches its policy in A-label form, and testing mode
does not pay a failing verified connection per session for a host known to fail it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.delivery.mta_sts_harness import (
    ENFORCE,
    GOOD,
    Deliveries,
    World,
    make_world,
    run,
    status,
)

from support.mta_sts_world import mx_host

CN_ONLY = "127.0.0.5"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as w:
        yield w


def test_enforce_refuses_an_mx_named_only_in_the_subject_cn(world: World, tmp_path: Path
                                                            ) -> None:
    controller, sink = mx_host(CN_ONLY, world.mx_port,
                               cert=world.ca.issue("cn.good.test", san=False))
    try:
        world.dns.add("cn.good.test", "A", CN_ONLY)
        world.domain("good.test", ["cn.good.test"], ENFORCE + "mx: *.good.test\n")

        async def steps(d: Deliveries) -> None:
            state, reply = status(await d.send("a@good.test"))["a@good.test"]
            assert state == "deferred"
            assert "TLS with cn.good.test could not be verified" in reply, reply

        run(tmp_path, world.settings(), steps)
    finally:
        controller.stop()
    assert sink.messages == []


def test_an_idn_domain_without_mx_matches_its_policy_in_a_label_form(world: World,
                                                                      tmp_path: Path) -> None:
    domain = "xn--bcher-kva.test"  # bücher.test: no MX, its own address is its mail host
    world.dns.add(domain, "A", GOOD)
    world.dns.add(f"_mta-sts.{domain}", "TXT", "v=STSv1; id=1")
    world.dns.add(f"mta-sts.{domain}", "A", "127.0.0.1")
    world.policies.set(f"mta-sts.{domain}", ENFORCE + f"mx: {domain}\n")

    async def steps(d: Deliveries) -> None:
        got = await d.send("a@bücher.test")
        assert status(got)["a@bücher.test"][0] == "delivered", status(got)
        assert got["a@bücher.test"].remote_host == domain  # the name its certificate carries

    run(tmp_path, world.settings(), steps)
    assert world.policies.count(f"mta-sts.{domain}") == 1
    assert [m.tls for m in world.good.messages] == [True]


def test_testing_mode_stops_trying_verified_tls_with_a_host_that_failed_it(
        world: World, tmp_path: Path) -> None:
    world.domain("testing2.test", ["mx.untrusted.test"],
                 "version: STSv1\nmode: testing\nmax_age: 600\nmx: mx.untrusted.test\n")

    async def steps(d: Deliveries) -> None:
        for i in range(3):
            got = await d.send(f"u{i}@testing2.test")
            assert got[f"u{i}@testing2.test"].status.value == "delivered"
            await d.service.pool.close()  # the next message needs a new session
            d.service.pool.idle_seconds = 5.0

    run(tmp_path, world.settings(), steps)
    # Each session says EHLO twice (before and after STARTTLS); the first one is preceded by
    # the verified attempt, which fails in its handshake after one EHLO. Later ones are not
    # (the failure is remembered for as long as its warning is quiet, an hour).
    assert world.untrusted.ehlo_count == 1 + 3 * 2
    assert len(world.untrusted.messages) == 3 and all(m.tls for m in world.untrusted.messages)
