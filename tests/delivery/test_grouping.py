"""A batch's domains are grouped by destination: domains with the same route or MX hosts share
one group (lanes, connections, one outcome write); a lookup that must wait for DNS, or failed,
keeps its domain apart, and never holds up the others."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from postroom.config.settings import DeliverySettings
from postroom.delivery import worker
from postroom.delivery.attempt import Job
from postroom.delivery.dns import DnsPermanentError, MxHost, MxResult
from postroom.delivery.grouping import by_destination
from postroom.delivery.outcomes import RetryPolicy
from postroom.delivery.routing import Router
from postroom.delivery.signing import SignerCache
from postroom.delivery.worker import BatchDelivery
from postroom.model import Claim
from postroom.store import Store
from store.factories import make_message

NOW = datetime.now(UTC)
SHARED = (MxHost("mx1.shared.example", 10), MxHost("mx2.shared.example", 10))


class Resolver:
    """Answers like a warm cache (no suspension), except `slow.test`, which waits."""

    async def resolve_mx(self, domain: str) -> MxResult:
        if domain == "slow.test":
            await asyncio.sleep(0.2)
            return MxResult(domain, (MxHost("mx.slow.test", 10),))
        if domain == "a.test":
            return MxResult(domain, SHARED)
        if domain == "b.test":  # the same tie, shuffled the other way
            return MxResult(domain, tuple(reversed(SHARED)))
        if domain in ("c.test", "d.test"):  # the same hosts, preferred the other way round
            first, second = (h.host for h in SHARED)
            if domain == "d.test":
                first, second = second, first
            return MxResult(domain, (MxHost(first, 10), MxHost(second, 20)))
        raise DnsPermanentError(domain, f"Domain {domain} does not exist (NXDOMAIN)")


def claim(n: int, domain: str) -> Claim:
    return Claim(recipient_id=n, message_id=f"m{n}", account_id="acc", mail_from="s@x.test",
                 address=f"u{n}@{domain}", domain=domain, attempts=0, created_at=NOW,
                 lease_until=NOW)


def test_domains_sharing_destinations_form_one_group() -> None:
    settings = DeliverySettings(routes={
        "relay1.test": "relay.local:2526", "relay2.test": "relay.local:2526",
        "strict.test": {"host": "relay.local", "port": 2526, "tls": "required"},  # not alike
    })
    router = Router(settings, Resolver())  # type: ignore[arg-type]
    by_domain: dict[str, list[Claim]] = defaultdict(list)
    for n, domain in enumerate(["relay1.test", "a.test", "relay2.test", "b.test", "slow.test",
                                "gone.test", "relay1.test", "a.test", "c.test", "d.test",
                                "strict.test"]):
        by_domain[domain].append(claim(n, domain))

    async def main() -> tuple[list, float]:  # type: ignore[type-arg]
        started = time.monotonic()
        groups = await by_destination(router, by_domain)
        took = time.monotonic() - started
        for _, route, _ in groups:  # let the slow lookup finish before the loop closes
            if isinstance(route, asyncio.Future):
                await route
        return groups, took

    groups, took = asyncio.run(main())
    assert took < 0.15, "the slow lookup held up the grouping"
    by_label = {label: (route, sorted(c.recipient_id for c in claims))
                for label, route, claims in groups}
    assert set(by_label) == {"relay1.test, relay2.test", "a.test, b.test", "slow.test",
                             "gone.test", "c.test", "d.test", "strict.test"}
    route, ids = by_label["relay1.test, relay2.test"]
    assert [d.key for d in route] == ["route:relay.local:2526:opportunistic:0"] and ids == [0, 2, 6]  # type: ignore[union-attr]
    route, ids = by_label["a.test, b.test"]
    assert sorted(d.host for d in route) == ["mx1.shared.example", "mx2.shared.example"]  # type: ignore[union-attr]
    assert ids == [1, 3, 7]
    route, ids = by_label["slow.test"]
    assert isinstance(route, asyncio.Future) and ids == [4]  # its own group, still looking up
    route, ids = by_label["gone.test"]
    assert isinstance(route, DnsPermanentError) and ids == [5]


def test_a_message_to_several_domains_of_a_group_is_rendered_once(tmp_path: Path,
                                                                  monkeypatch: Any) -> None:
    """Its copy (Received, DKIM-Signature) is the same for every domain of the group: made and
    signed once, one transaction per domain still."""
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        account = store.create_account("acme", sender_domains=["acme.test"])
        message = make_message(account.id, "u1@a.test", "u2@b.test", "u3@a.test")
        asyncio.run(store.enqueue(message))
        claims = store.claim_due("w", now=datetime.now(UTC) + timedelta(seconds=1), limit=10,
                                 lease_seconds=300)
        batch = BatchDelivery(
            store=store, domains=SimpleNamespace(router=None),  # type: ignore[arg-type]
            signers=SignerCache(store.get_dkim_key), policy=RetryPolicy(60, 7200, 432000),
            hostname="postroom.test", verp_secret=b"s" * 32, deadline=60)
        made: list[bytes] = []

        def counted(*args: Any, **kwargs: Any) -> bytes:
            made.append(real(*args, **kwargs))
            return made[-1]

        real = worker.render_copy
        monkeypatch.setattr(worker, "render_copy", counted)

        async def jobs() -> list[Job]:
            loaded = await batch._load(claims)
            return [job async for chunk in batch._jobs(claims, loaded, []) for job in chunk]

        found = asyncio.run(jobs())
    finally:
        store.close()
    assert len(made) == 1
    assert sorted(sorted(c.address for c in j.claims) for j in found) == [
        ["u1@a.test", "u3@a.test"], ["u2@b.test"]]
    assert all(j.data is made[0] for j in found)
