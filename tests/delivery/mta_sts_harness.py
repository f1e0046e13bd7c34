"""The MTA-STS delivery world shared by `test_mta_sts_delivery*.py`: a real DNS stub, an HTTPS
policy server with a test CA, receivers with and without STARTTLS on loopback addresses, a
SQLite store, and the `DeliveryService` wiring built from `[delivery]` settings.

MX hosts: 127.0.0.2 offers STARTTLS with a certificate from the test CA for every `GOOD_NAMES`
name, 127.0.0.3 offers it with a self-signed one, 127.0.0.4 offers no TLS at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from postroom.config.settings import DeliverySettings, Settings
from postroom.delivery.outcomes import RetryPolicy
from postroom.delivery.service import DeliveryService
from postroom.delivery.signing import SignerCache
from postroom.delivery.worker import BatchDelivery
from postroom.model import RecipientRecord
from postroom.store import Store
from store.factories import make_message
from support.dns_stub import DnsStub
from support.mta_sts_world import PolicyServer, TestCA, mx_host, shared_port
from support.smtp_sinks import SinkHandler

GOOD, UNTRUSTED, PLAIN = "127.0.0.2", "127.0.0.3", "127.0.0.4"
GOOD_NAMES = ["mx.good.test", "a.mx.wild.test", "mx2.fallback.test", "mx.cached.test",
              "mx.keep.test", "xn--bcher-kva.test"]  # bücher.test: its own (implicit) MX
ENFORCE = "version: STSv1\nmode: enforce\nmax_age: 86400\n"


@dataclass
class World:
    dns: DnsStub
    policies: PolicyServer
    mx_port: int
    ca: TestCA
    good: SinkHandler
    untrusted: SinkHandler
    plain: SinkHandler

    def settings(self, **extra: Any) -> DeliverySettings:
        return DeliverySettings(
            nameservers=[self.dns.address], mx_port=self.mx_port,
            mta_sts_port=self.policies.port, mta_sts_cafile=str(self.ca.cafile), **extra)

    def domain(self, domain: str, mx: list[str], policy: str | None = None,
               record_id: str = "1") -> None:
        """`domain` with these "pref host" MX records and, with `policy`, an MTA-STS policy."""
        for i, entry in enumerate(mx):
            self.dns.add(domain, "MX", f"{(i + 1) * 10} {entry}.")
        if policy is not None:
            self.dns.add(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={record_id}")
            self.dns.add(f"mta-sts.{domain}", "A", "127.0.0.1")
            self.policies.set(f"mta-sts.{domain}", policy)

    def sent(self) -> int:
        return len(self.good.messages) + len(self.untrusted.messages) + len(self.plain.messages)


@contextlib.contextmanager
def make_world(tmp_path: Path) -> Iterator[World]:
    """The DNS world, the policy server and the three MX hosts, stopped afterwards."""
    ca = TestCA(tmp_path)
    policy_names = [f"mta-sts.{d}" for d in ("good.test", "wild.test", "nomatch.test",
                    "plain.test", "untrusted.test", "fallback.test", "testing.test",
                    "testing2.test", "cached.test", "keep.test", "off.test",
                    "xn--bcher-kva.test")]
    port = shared_port([GOOD, UNTRUSTED, PLAIN])
    hosts = {
        GOOD: mx_host(GOOD, port, cert=ca.issue(*GOOD_NAMES)),
        UNTRUSTED: mx_host(UNTRUSTED, port, untrusted=True),
        PLAIN: mx_host(PLAIN, port),
    }
    records: dict[str, dict[str, list[str] | str]] = {n: {"A": GOOD} for n in GOOD_NAMES}
    records |= {"wrongname.good.test": {"A": GOOD}, "mx.untrusted.test": {"A": UNTRUSTED},
                "mx1.fallback.test": {"A": UNTRUSTED}, "mx.plain.test": {"A": PLAIN},
                "mx3.fallback.test": {"A": PLAIN}}
    try:
        with DnsStub(records) as dns, PolicyServer(ca.issue(*policy_names)) as policies:
            yield World(dns, policies, port, ca, hosts[GOOD][1], hosts[UNTRUSTED][1],
                        hosts[PLAIN][1])
    finally:
        for controller, _ in hosts.values():
            controller.stop()


class Deliveries:
    """One DeliveryService (its router, MTA-STS cache and pool) and a store, for one loop."""

    def __init__(self, tmp_path: Path, settings: DeliverySettings) -> None:
        self.store = Store.open(f"sqlite:///{tmp_path / 'mail.db'}")
        self.account = self.store.create_account("acme", sender_domains=["acme.test"])
        self.service = DeliveryService(Settings(delivery=settings), self.store)
        self.batch = BatchDelivery(
            store=self.store, domains=self.service.domains,
            signers=SignerCache(self.store.get_dkim_key), policy=RetryPolicy(60, 7200, 432000),
            hostname="postroom.test", verp_secret=b"s" * 32, deadline=30.0)

    async def send(self, *rcpts: str) -> dict[str, RecipientRecord]:
        """Queue one message to `rcpts`, deliver what is due, return its recipients."""
        message = make_message(self.account.id, *rcpts)
        await self.store.enqueue_batch([message])
        claims = await asyncio.to_thread(
            self.store.claim_due, "w", now=datetime.now(UTC) + timedelta(seconds=1), limit=50,
            lease_seconds=300)
        await self.batch.deliver_batch("w", claims)
        await self.batch.recorder.drained(timeout=5.0)
        record = self.store.get_message(message.id)
        assert record is not None
        return {r.address: r for r in record.recipients}

    async def close(self) -> None:
        await self.service.pool.close()
        self.store.close()


def run(tmp_path: Path, settings: DeliverySettings,
        steps: Callable[[Deliveries], Awaitable[None]]) -> None:
    """`steps(deliveries)` on one event loop (pooled sessions belong to it), then close."""
    async def main() -> None:
        deliveries = Deliveries(tmp_path, settings)
        try:
            await steps(deliveries)
        finally:
            await deliveries.close()

    asyncio.run(main())


def status(records: dict[str, RecipientRecord]) -> dict[str, tuple[str, str]]:
    return {a: (r.status.value, r.last_reply or "") for a, r in records.items()}
