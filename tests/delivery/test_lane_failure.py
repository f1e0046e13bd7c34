"""A lane that fails with something other than a `DeliveryError` (a bug: here a recipient
address with a line break, which the SMTP client refuses to put on a command line) stops its
sibling lanes: they are cancelled and awaited before the group fails, so no connection stays
held, nothing more is sent, and every recipient of the group ends delivered or deferred. The
lanes used to keep going after the group had already recorded their recipients deferred:
messages went out (and would go out again at the retry) while their connections were held."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from postroom.config.settings import DeliverySettings
from postroom.delivery.attempt import DomainDelivery, Job
from postroom.delivery.outcomes import RetryPolicy
from postroom.delivery.pool import Pool
from postroom.delivery.routing import Destination, Router
from postroom.delivery.signing import SignerCache
from postroom.delivery.worker import BatchDelivery
from postroom.model import Claim
from postroom.smtp.client import ClientTimeouts
from postroom.smtp.errors import LocalProtocolError
from postroom.store import Store
from store.factories import make_message
from support.scripted_smtp import ScriptedSmtp

NOW = datetime.now(UTC)
BAD = "bad\r\nRCPT TO:<x@evil.test>@a.test"  # the client will not write this


async def slow_dot(n: int) -> bytes:
    await asyncio.sleep(0.1)  # the peer takes a while: the sibling lanes are mid-send
    return b"250 2.0.0 queued\r\n"


def claim(n: int, address: str) -> Claim:
    return Claim(recipient_id=n, message_id=f"m{n}", account_id="a", mail_from="s@x.test",
                 address=address, domain="a.test", attempts=0, created_at=NOW,
                 lease_until=NOW + timedelta(minutes=5))


def test_a_failing_lane_stops_its_siblings_before_the_group_fails() -> None:
    async def run() -> None:
        async with ScriptedSmtp(on_dot=slow_dot) as peer:
            pool = Pool(max_total=10, max_per_key=3, max_messages=100)
            domains = DomainDelivery(router=None, resolver=None,  # type: ignore[arg-type]
                                     pool=pool, helo_name="postroom.test",
                                     timeouts=ClientTimeouts())
            dest = Destination(host="127.0.0.1", port=peer.port, tls="off", source="route")
            jobs = [Job((claim(n, BAD if n == 4 else f"u{n}@a.test"),), "s@x.test",
                        f"Subject: {n}\r\n\r\nhi\r\n".encode()) for n in range(12)]
            results: list[Any] = []
            with pytest.raises(LocalProtocolError):
                await domains.deliver_to([dest], jobs, results)
            assert pool.slots.total == pool.idle_count, "a lane still holds a connection"
            settled, sent = len(results), len(peer.messages)
            await asyncio.sleep(0.5)  # a lane still running would send and settle more
            assert (len(results), len(peer.messages)) == (settled, sent)
            assert sent < 11, "the siblings sent the whole queue"
            await pool.close()

    asyncio.run(run())


def test_the_group_defers_what_its_lanes_had_not_settled(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    account = store.create_account("acme", sender_domains=["acme.test"])
    rcpts = [BAD if n == 4 else f"u{n}@a.test" for n in range(12)]
    messages = [make_message(account.id, r, raw=f"Subject: for {r}\r\n\r\nhi\r\n".encode())
                for r in rcpts]
    asyncio.run(store.enqueue_batch(messages))
    settings = DeliverySettings(routes={"*": "127.0.0.1:1"}, tls="off")

    async def run() -> ScriptedSmtp:
        async with ScriptedSmtp(on_dot=slow_dot) as peer:
            settings.routes["*"] = f"127.0.0.1:{peer.port}"
            pool = Pool(max_total=10, max_per_key=3, max_messages=100)
            domains = DomainDelivery(router=Router(settings, None), resolver=None,  # type: ignore[arg-type]
                                     pool=pool, helo_name="postroom.test",
                                     timeouts=ClientTimeouts())
            batch = BatchDelivery(store=store, domains=domains,
                                  signers=SignerCache(store.get_dkim_key),
                                  policy=RetryPolicy(60, 7200, 432000), hostname="postroom.test",
                                  verp_secret=b"s" * 32, deadline=60.0)
            leased = store.claim_due("w", now=datetime.now(UTC) + timedelta(seconds=1),
                                     limit=20, lease_seconds=300)
            assert len(leased) == 12
            await batch.deliver_batch("w", leased)
            await asyncio.sleep(0.5)  # a lane still running would send more meanwhile
            await batch.recorder.drained(timeout=2.0)
            await pool.close()
        return peer

    peer = asyncio.run(run())
    status: dict[str, str] = {}
    for m in messages:
        record = store.get_message(m.id)
        assert record is not None
        status.update({r.address: r.status.value for r in record.recipients})
    received = {r for r in rcpts for body in peer.messages if f"for {r}".encode() in body}
    assert set(status.values()) <= {"delivered", "deferred"}, status
    assert {r for r, s in status.items() if s == "delivered"} == received
    assert store.release_leases("w") == 0  # nothing left leased
    store.close()
