"""Delivery against receivers that answer oddly, and around shutdown and schedules: each case
once recorded the wrong outcome (found by a review; every test failed before its fix).

- a greeting sent twice: the second 220 was read as the EHLO reply and the recipient recorded
  delivered, although nothing was sent;
- a smarthost refusing our credentials (535) bounced every recipient instead of retrying;
- a refused MAIL FROM (our sender) was read as about each recipient, and suppressed them all;
- "552 too many recipients" bounced for good (RFC 5321 §4.5.3.1.10: treat it as temporary);
- a group cancelled by shutdown dropped the 250s it already had, so they were sent again;
- a message scheduled further ahead than expire_seconds expired before its first try.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from postroom.config.settings import DeliverySettings
from postroom.delivery import outcomes
from postroom.delivery.attempt import DomainDelivery, Job
from postroom.delivery.classify import OutcomeKind, classify_reply
from postroom.delivery.outcomes import RetryPolicy
from postroom.delivery.pool import Pool
from postroom.delivery.routing import Destination, Router
from postroom.delivery.signing import SignerCache
from postroom.delivery.worker import BatchDelivery
from postroom.model import Claim
from postroom.smtp.client import ClientTimeouts
from postroom.smtp.replies import reply
from postroom.store import Store
from store.factories import make_message
from support.scripted_smtp import ScriptedSmtp
from support.smtp_sinks import SmtpSink

NOW = datetime.now(UTC)


def batch_for(store: Store, port: int) -> BatchDelivery:
    settings = DeliverySettings(routes={"*": f"127.0.0.1:{port}"}, tls="off")
    pool = Pool(max_total=10, max_per_key=1, max_messages=100)
    domains = DomainDelivery(router=Router(settings, None), resolver=None,  # type: ignore[arg-type]
                             pool=pool, helo_name="postroom.test", timeouts=ClientTimeouts())
    return BatchDelivery(store=store, domains=domains, signers=SignerCache(store.get_dkim_key),
                         policy=RetryPolicy(60, 7200, 432000), hostname="postroom.test",
                         verp_secret=b"s" * 32, deadline=60.0)


def statuses(store: Store, message_id: str) -> dict[str, str]:
    found = store.get_message(message_id)
    assert found is not None
    return {r.address: r.status.value for r in found.recipients}


def queued(tmp_path: Path, *rcpts: str, **fields: Any) -> tuple[Store, Any, str]:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    account = store.create_account("acme", sender_domains=["acme.test"])
    message = make_message(account.id, *rcpts, **fields)
    asyncio.run(store.enqueue(message))
    return store, account, message.id


def claims(store: Store, now: datetime | None = None) -> list[Claim]:
    return store.claim_due("w", now=(now or datetime.now(UTC)) + timedelta(seconds=1),
                           limit=10, lease_seconds=300)


def test_a_second_greeting_is_no_delivery(tmp_path: Path) -> None:
    store, _, mid = queued(tmp_path, "u1@a.test")

    async def run() -> ScriptedSmtp:
        async with ScriptedSmtp(banner=b"220 proxy ready\r\n220 mx ESMTP\r\n") as peer:
            await batch_for(store, peer.port).deliver_batch("w", claims(store))
        return peer

    peer = asyncio.run(run())
    assert peer.messages == []
    assert statuses(store, mid) == {"u1@a.test": "deferred"}
    store.close()


def test_rejected_smarthost_credentials_defer(tmp_path: Path) -> None:
    claim = Claim(recipient_id=1, message_id="m", account_id="a", mail_from="s@x.test",
                  address="r@y.test", domain="y.test", attempts=0, created_at=NOW,
                  lease_until=NOW)
    with SmtpSink(users={"u": "right"}, auth_require_tls=False) as sink:
        relay = Destination(host="127.0.0.1", port=sink.port, tls="off", username="u",
                            password="wrong", source="route")

        async def run() -> list[Any]:
            domains = DomainDelivery(router=None, resolver=None,  # type: ignore[arg-type]
                                     pool=Pool(max_total=4, max_per_key=2, max_messages=10),
                                     helo_name="postroom.test", timeouts=ClientTimeouts())
            results: list[Any] = []
            await domains.deliver_to([relay], [Job((claim,), "s@x.test", b"Subject: x\r\n\r\n")],
                                     results)
            return results

        [result] = asyncio.run(run())
    assert result.outcome.kind is OutcomeKind.DEFERRED, result
    assert "535" in result.reply


def test_a_refused_sender_suppresses_nobody(tmp_path: Path) -> None:
    store, account, mid = queued(tmp_path, "alice@a.test", "bob@a.test")

    async def run() -> None:
        async with ScriptedSmtp(mail_reply=b"553 Sender <sender@acme.test> unknown\r\n") as peer:
            await batch_for(store, peer.port).deliver_batch("w", claims(store))

    asyncio.run(run())
    assert statuses(store, mid) == {"alice@a.test": "bounced", "bob@a.test": "bounced"}
    assert store.suppressed_among(account.id, ["alice@a.test", "bob@a.test"]) == set()
    store.close()


def test_too_many_recipients_is_temporary() -> None:
    for rep in (reply(552, "5.5.3", "Too many recipients"), reply(552, None, "Too many recipients")):
        outcome = classify_reply(rep)
        assert (outcome.kind, outcome.status[0]) == (OutcomeKind.DEFERRED, "4"), outcome
    assert classify_reply(reply(552, "5.3.4", "Message too big")).kind is OutcomeKind.BOUNCED


def test_shutdown_keeps_the_outcomes_already_known(tmp_path: Path) -> None:
    store, _, mid = queued(tmp_path, "u1@a.test", "u2@b.test")

    async def slow_second(n: int) -> bytes:
        if n == 2:
            await asyncio.sleep(30)
        return b"250 2.0.0 queued\r\n"

    async def run() -> ScriptedSmtp:
        async with ScriptedSmtp(on_dot=slow_second) as peer:
            batch = batch_for(store, peer.port)
            task = asyncio.create_task(batch.deliver_batch("w", claims(store)))
            for _ in range(500):
                if len(peer.messages) >= 2:
                    break
                await asyncio.sleep(0.01)
            task.cancel()  # what DeliveryService._shutdown does after the grace period
            await asyncio.wait([task], timeout=2.0)
            await batch.recorder.drained(timeout=2.0)
        return peer

    peer = asyncio.run(run())
    assert len(peer.messages) == 2
    assert store.release_leases("w") == 1  # the one without an answer, for the next start
    assert statuses(store, mid) == {"u1@a.test": "delivered", "u2@b.test": "queued"}
    store.close()


def test_a_message_scheduled_far_ahead_is_tried(tmp_path: Path) -> None:
    later = datetime.now(UTC) + timedelta(days=6)  # expire_seconds: 5 days
    store, _, mid = queued(tmp_path, "u1@a.test", not_before=later)

    async def run() -> ScriptedSmtp:
        async with ScriptedSmtp() as peer:
            batch = batch_for(store, peer.port)
            batch.clock = lambda: later + timedelta(seconds=1)
            await batch.deliver_batch("w", claims(store, later))
        return peer

    peer = asyncio.run(run())
    assert len(peer.messages) == 1
    assert statuses(store, mid) == {"u1@a.test": "delivered"}
    store.close()


def test_expiry_counts_from_the_scheduled_time() -> None:
    policy = RetryPolicy(60, 7200, 432000)
    base = Claim(recipient_id=1, message_id="m", account_id="a", mail_from="s@x.test",
                 address="r@y.test", domain="y.test", attempts=3, created_at=NOW,
                 lease_until=NOW, not_before=NOW + timedelta(days=6))
    failure = outcomes.error_result(base, "connection refused")
    at = NOW + timedelta(days=7)  # 7 days after acceptance, 1 after its time
    assert outcomes.finish(failure, at, policy).status.value == "deferred"
    at = NOW + timedelta(days=12)
    assert outcomes.finish(failure, at, policy).status.value == "failed"


def test_deliver_by_deadline_fails_undelivered_copies(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    account = store.create_account("acme", sender_domains=["acme.test"])
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    late = make_message(account.id, "late@a.test", options={"deliver_by": past})
    fine = make_message(account.id, "fine@a.test", options={"deliver_by": ahead})
    asyncio.run(store.enqueue_batch([late, fine]))

    async def run() -> ScriptedSmtp:
        async with ScriptedSmtp() as peer:
            await batch_for(store, peer.port).deliver_batch("w", claims(store))
        return peer

    peer = asyncio.run(run())
    assert len(peer.messages) == 1
    assert statuses(store, late.id) == {"late@a.test": "failed"}
    assert statuses(store, fine.id) == {"fine@a.test": "delivered"}
    [event] = [e for e in store.list_events(late.id) if e.type.value == "failed"]
    assert event.reply.startswith("4.4.7 Delivery deadline passed") and event.data["deliver_by"]
    store.close()


def test_a_group_never_sends_past_its_lease(tmp_path: Path) -> None:
    """The sending deadline follows the leases: a group whose lease has (almost) run out by
    the time it starts sends nothing and defers, since another worker may hold it now."""
    store, _, mid = queued(tmp_path, "u1@a.test")

    async def run() -> ScriptedSmtp:
        async with ScriptedSmtp() as peer:
            batch = batch_for(store, peer.port)
            leased = claims(store)
            batch.clock = lambda: leased[0].lease_until + timedelta(seconds=1)
            await batch.deliver_batch("w", leased)
        return peer

    peer = asyncio.run(run())
    assert peer.messages == []
    assert statuses(store, mid) == {"u1@a.test": "deferred"}
    store.close()


def test_a_connection_the_server_is_closing_is_not_reused(tmp_path: Path) -> None:
    """A 421 that arrives unasked while the connection is idle (its close still on the way)
    retires the connection: the next message goes over a fresh one, not into a deferral."""
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    account = store.create_account("acme", sender_domains=["acme.test"])
    first, second = (make_message(account.id, f"u{i}@a.test") for i in (1, 2))
    asyncio.run(store.enqueue_batch([first, second]))

    async def dot(n: int) -> bytes:
        return b"250 2.0.0 ok\r\n421 4.4.2 idle timeout\r\n" if n == 1 else b"250 2.0.0 ok\r\n"

    async def run() -> ScriptedSmtp:
        async with ScriptedSmtp(extensions=("8BITMIME",), on_dot=dot) as peer:
            await batch_for(store, peer.port).deliver_batch("w", claims(store))
        return peer

    peer = asyncio.run(run())
    assert len(peer.messages) == 2
    assert {**statuses(store, first.id), **statuses(store, second.id)} == {
        "u1@a.test": "delivered", "u2@a.test": "delivered"}
    store.close()


def test_a_copy_converted_for_a_7bit_peer_is_signed_again(tmp_path: Path) -> None:
    """A peer without 8BITMIME gets the body re-encoded; the DKIM signature made over the
    stored bytes then failed its body hash there. The client signs the converted copy again."""
    import dkim

    from postroom.render.dkim import generate_key
    from support.dns_stub import DnsStub

    pem, txt = generate_key("rsa-sha256")
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    account = store.create_account("acme", sender_domains=["acme.test"])
    store.add_dkim_key("acme.test", "s1", "rsa-sha256", pem)
    raw = ("From: news@acme.test\r\nTo: u1@a.test\r\nSubject: café\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "Grüße aus München\r\n").encode()
    message = make_message(account.id, "u1@a.test", raw=raw, header_from="news@acme.test",
                           mail_from="news@acme.test")
    asyncio.run(store.enqueue(message))
    with SmtpSink(hide_extensions=["8BITMIME"], smtputf8=False) as sink, \
            DnsStub({"s1._domainkey.acme.test": {"TXT": txt}}) as dns:
        asyncio.run(batch_for(store, sink.port).deliver_batch("w", claims(store)))
        [got] = sink.wait_for_messages(1)
        assert got.data.isascii() and b"Content-Transfer-Encoding: quoted-printable" in got.data
        assert dkim.verify(got.data, dnsfunc=dns.dnsfunc), "DKIM fails after the conversion"
    assert statuses(store, message.id) == {"u1@a.test": "delivered"}
    store.close()
