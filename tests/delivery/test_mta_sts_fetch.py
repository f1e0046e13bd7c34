"""The MTA-STS policy fetch against a real DNS stub and HTTPS server: a policy host whose first
address never answers is reached at the next one in time, and its certificate must name it in
a SAN DNS-ID (RFC 8461 §3.3 via §4.2; a subject CN alone does not count)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.config.settings import DeliverySettings
from postroom.delivery.dns import Resolver
from postroom.delivery.mta_sts import Policy
from postroom.delivery.mta_sts_fetch import FetchError, PolicyFetcher
from postroom.delivery.mta_sts_policies import from_settings
from postroom.smtp.tls import client_context
from support.dns_stub import DnsStub
from support.mta_sts_world import PolicyServer, TestCA

POLICY = "version: STSv1\nmode: enforce\nmx: mx.a.test\nmax_age: 1000\n"
SILENT = "127.0.0.11"


class SilentFirst(Resolver):
    """The stub sorts its A records; the silent address must come first."""

    async def resolve_addresses(self, host: str) -> list[str]:
        return sorted(await super().resolve_addresses(host), key=lambda a: a != SILENT)


@contextlib.contextmanager
def silent_listener(address: str, port: int) -> Iterator[None]:
    """A listener whose accept queue is full: further SYNs are dropped, connecting hangs."""
    held = [socket.socket()]
    held[0].bind((address, port))
    held[0].listen(0)
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect((address, port))
        held.append(filler)
    time.sleep(0.1)
    try:
        yield
    finally:
        for s in held:
            s.close()


def test_a_silent_first_address_moves_on_to_the_next(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    with PolicyServer(ca.issue("mta-sts.a.test")) as server, \
            DnsStub({"mta-sts.a.test": {"A": ["127.0.0.1", SILENT]}}) as dns, \
            silent_listener(SILENT, server.port):
        server.set("mta-sts.a.test", POLICY)
        resolver = SilentFirst([dns.address], timeout=0.5, lifetime=1.0)
        fetch = PolicyFetcher(resolver, client_context(True, cafile=ca.cafile),
                              port=server.port, timeout=3.0)
        started = time.monotonic()
        assert asyncio.run(fetch("a.test")) == Policy("enforce", ("mx.a.test",), 1000)
        assert time.monotonic() - started < 2.5  # the connect gave up before the deadline
        assert server.count("mta-sts.a.test") == 1


def test_one_deadline_for_all_of_a_hosts_addresses(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    addresses = ["127.0.0.1"] + [f"127.0.0.{n}" for n in range(12, 17)]
    with contextlib.ExitStack() as stack:  # each connects, then never says a word
        first = stack.enter_context(socket.create_server((addresses[0], 0)))
        port = first.getsockname()[1]
        for address in addresses[1:]:
            stack.enter_context(socket.create_server((address, port)))
        dns = stack.enter_context(DnsStub({"mta-sts.a.test": {"A": addresses}}))
        fetch = PolicyFetcher(Resolver([dns.address], timeout=0.5, lifetime=1.0),
                              client_context(True, cafile=ca.cafile), port=port, timeout=0.6,
                              connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out"):
            asyncio.run(fetch("a.test"))
        assert time.monotonic() - started < 1.2  # not 0.3 s per address (6), added up


def test_a_policy_host_named_only_in_the_subject_cn_is_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = TestCA(tmp_path)
    records: dict[str, dict[str, list[str] | str]] = {
        "_mta-sts.a.test": {"TXT": "v=STSv1; id=1"}, "mta-sts.a.test": {"A": "127.0.0.1"}}
    with PolicyServer(ca.issue("mta-sts.a.test", san=False)) as server, \
            DnsStub(records) as dns:
        server.set("mta-sts.a.test", POLICY)
        settings = DeliverySettings(nameservers=[dns.address], mta_sts_port=server.port,
                                    mta_sts_cafile=str(ca.cafile))
        policies = from_settings(settings, Resolver([dns.address], timeout=0.5, lifetime=1.0))
        assert policies is not None
        with caplog.at_level(logging.WARNING, logger="postroom.delivery"):
            assert asyncio.run(policies.policy("a.test")) is None
        assert server.requests == []
    assert "certificate not valid" in caplog.text


def test_the_mta_sts_context_wants_a_dns_id_even_without_a_cafile() -> None:
    """Enforce-mode MX sessions get it too: the client's shared default context would let a
    subject CN name the host (for routes with `verify = true` it still does)."""
    policies = from_settings(DeliverySettings(), Resolver())
    assert policies is not None and policies.tls_context is not None
    assert policies.tls_context.hostname_checks_common_name is False
    assert policies.tls_context.check_hostname
    assert client_context(True).hostname_checks_common_name  # other callers: unchanged
