"""Leasing recipients to delivery workers, and recording outcomes."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from postroom.model import Account, EventType, RecipientStatus
from postroom.store import Store

from .factories import make_message
from .workers import claim_until_empty

LEASE = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


def _fill(store: Store, account: Account, messages: int, per_message: int) -> set[int]:
    batch = [
        make_message(account.id, *(f"u{m}.{r}@d{r % 4}.example" for r in range(per_message)))
        for m in range(messages)
    ]
    store.enqueue_many(batch)
    return {r.id for m in batch for r in store.get_message(m.id).recipients}  # type: ignore[union-attr]


def test_claims_are_leased_and_sorted_by_domain(store: Store, account: Account) -> None:
    store.enqueue_many([
        make_message(account.id, "a@zulu.example", "b@alpha.example"),
        make_message(account.id, "c@mike.example", "d@ALPHA.example"),
    ])
    now = _now()
    claims = store.claim_due("w1", now=now, limit=10, lease_seconds=LEASE)
    assert [c.domain for c in claims] == ["alpha.example", "alpha.example", "mike.example",
                                          "zulu.example"]
    assert [c.address for c in claims][:2] == ["b@alpha.example", "d@ALPHA.example"]
    first = claims[0]
    assert first.lease_until == now + timedelta(seconds=LEASE)
    assert first.attempts == 0 and first.account_id == account.id
    assert first.mail_from == "sender@acme.test" and first.created_at.tzinfo is not None
    # Leased: nobody gets them again until the lease runs out.
    assert store.claim_due("w2", now=now + timedelta(seconds=LEASE - 1), limit=10,
                           lease_seconds=LEASE) == []
    assert store.claim_due("w1", now=now, limit=0, lease_seconds=LEASE) == []


def test_limit_and_order_of_due_recipients(store: Store, account: Account) -> None:
    ids = sorted(_fill(store, account, 3, 2))
    now = _now()
    got = store.claim_due("w1", now=now, limit=4, lease_seconds=LEASE)
    assert sorted(c.recipient_id for c in got) == ids[:4]  # oldest first
    rest = store.claim_due("w2", now=now, limit=4, lease_seconds=LEASE)
    assert sorted(c.recipient_id for c in rest) == ids[4:]


def test_expired_lease_is_claimable_and_old_owner_is_locked_out(
    store: Store, account: Account
) -> None:
    store.enqueue_many([make_message(account.id, "a@example.com")])
    now = _now()
    (claim,) = store.claim_due("w1", now=now, limit=5, lease_seconds=LEASE)
    later = now + timedelta(seconds=LEASE + 1)
    (again,) = store.claim_due("w2", now=later, limit=5, lease_seconds=LEASE)
    assert again.recipient_id == claim.recipient_id and again.lease_until > claim.lease_until

    assert store.mark_delivered(claim.recipient_id, "w1", reply="250 ok", remote_host="mx",
                                attempt=1) is False
    assert store.mark_delivered(again.recipient_id, "w2", reply="250 2.0.0 ok",
                                remote_host="mx.example.com", attempt=1) is True
    record = store.get_message(claim.message_id)
    assert record is not None
    (rcpt,) = record.recipients
    assert rcpt.status == RecipientStatus.DELIVERED
    assert (rcpt.attempts, rcpt.last_reply, rcpt.remote_host) == (
        1, "250 2.0.0 ok", "mx.example.com"
    )
    last = store.list_events(claim.message_id)[-1]
    assert (last.type, last.recipient, last.attempt, last.reply, last.remote_host) == (
        EventType.DELIVERED, "a@example.com", 1, "250 2.0.0 ok", "mx.example.com"
    )
    # Terminal and unleased: never claimed again, and a second outcome is refused.
    assert store.claim_due("w3", now=later + timedelta(days=9), limit=5, lease_seconds=1) == []
    assert store.mark_bounced(rcpt.id, "w2", reply="550", remote_host="mx", attempt=2) is False


def test_mark_requires_the_lease_owner(store: Store, account: Account) -> None:
    store.enqueue_many([make_message(account.id, "a@example.com")])
    (claim,) = store.claim_due("w1", now=_now(), limit=5, lease_seconds=LEASE)
    rid = claim.recipient_id
    assert store.mark_delivered(rid, "w2", reply="250", remote_host="mx", attempt=1) is False
    assert store.mark_deferred(rid, "w2", reply="451", remote_host="mx",
                               next_attempt_at=_now(), attempt=1) is False
    assert store.mark_bounced(rid, "w2", reply="550", remote_host="mx", attempt=1) is False
    assert store.mark_failed(rid, "w2", reply="expired", attempt=1) is False
    assert store.mark_delivered(10**9, "w1", reply="250", remote_host="mx", attempt=1) is False
    assert store.counts_by_status()["queued"] == 1
    assert [e.type for e in store.list_events(claim.message_id)] == [EventType.QUEUED]


def test_deferred_then_bounced_and_failed(store: Store, account: Account) -> None:
    store.enqueue_many([make_message(account.id, "a@example.com", "b@example.com")])
    now = _now()
    a, b = store.claim_due("w1", now=now, limit=5, lease_seconds=LEASE)
    retry_at = now + timedelta(minutes=5)
    for c in (a, b):
        assert store.mark_deferred(c.recipient_id, "w1", reply="451 4.7.1 try later",
                                   remote_host="mx1", next_attempt_at=retry_at, attempt=1)
    counts = store.counts_by_status()
    assert counts["deferred"] == 2 and counts["queued"] == 0 and set(counts) == {
        s.value for s in RecipientStatus
    }
    assert store.next_due_at() == retry_at
    # Not due before next_attempt_at, due after; attempts carried in the claim.
    assert store.claim_due("w1", now=retry_at - timedelta(seconds=1), limit=5,
                           lease_seconds=LEASE) == []
    a2, b2 = store.claim_due("w1", now=retry_at, limit=5, lease_seconds=LEASE)
    assert (a2.attempts, b2.attempts) == (1, 1)

    assert store.mark_bounced(a2.recipient_id, "w1", reply="550 5.1.1 no such user",
                              remote_host="mx2", attempt=2, data={"dsn": "5.1.1"})
    assert store.mark_failed(b2.recipient_id, "w1", reply="expired", attempt=2,
                             data={"reason": "expired"})
    record = store.get_message(a.message_id)
    assert record is not None
    bounced, failed = record.recipients
    assert (bounced.status, bounced.remote_host, bounced.attempts) == ("bounced", "mx2", 2)
    assert (failed.status, failed.remote_host, failed.last_reply) == ("failed", "mx1", "expired")
    kinds = [(e.type, e.recipient, e.data) for e in store.list_events(a.message_id)]
    assert kinds[-2:] == [
        (EventType.BOUNCED, "a@example.com", {"dsn": "5.1.1"}),
        (EventType.FAILED, "b@example.com", {"reason": "expired"}),
    ]
    assert [k[0] for k in kinds].count(EventType.DEFERRED) == 2
    assert store.next_due_at() is None
    with pytest.raises(ValueError, match="naive"):
        store.mark_deferred(a2.recipient_id, "w1", reply="x", remote_host=None,
                            next_attempt_at=datetime(2030, 1, 1), attempt=3)


def test_scheduled_recipients_wait_for_not_before(store: Store, account: Account) -> None:
    now = _now()
    at = now + timedelta(hours=1)
    store.enqueue_many([make_message(account.id, "a@example.com", not_before=at)])
    assert store.claim_due("w1", now=now, limit=5, lease_seconds=LEASE) == []
    assert store.claim_due("w1", now=at - timedelta(seconds=1), limit=5,
                           lease_seconds=LEASE) == []
    assert store.next_due_at() == at
    (claim,) = store.claim_due("w1", now=at, limit=5, lease_seconds=LEASE)
    assert claim.address == "a@example.com"
    assert store.next_due_at() == claim.lease_until


def test_release_leases(store: Store, account: Account) -> None:
    _fill(store, account, 2, 2)
    now = _now()
    assert len(store.claim_due("w1", now=now, limit=3, lease_seconds=LEASE)) == 3
    assert len(store.claim_due("w2", now=now, limit=3, lease_seconds=LEASE)) == 1
    assert store.release_leases("w1") == 3
    assert store.release_leases("w1") == 0
    assert len(store.claim_due("w3", now=now, limit=10, lease_seconds=LEASE)) == 3


def test_concurrent_claimers_in_threads_never_share(store: Store, account: Account) -> None:
    all_ids = _fill(store, account, 100, 3)
    now = _now()
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(8)

    def claimer(owner: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while claims := store.claim_due(owner, now=now, limit=7, lease_seconds=LEASE):
            mine.extend(c.recipient_id for c in claims)
        results[owner] = mine

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [rid for ids in results.values() for rid in ids]
    assert len(claimed) == len(set(claimed)), "a recipient was leased to two owners"
    assert set(claimed) == all_ids


def test_concurrent_claimers_in_processes_never_share(store_url: str) -> None:
    with Store.open(store_url) as store:
        account = store.create_account("acme")
        all_ids = _fill(store, account, 60, 2)
    now = _now().isoformat()
    start_at = time.time() + 1.5
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        futures = [
            pool.submit(claim_until_empty, store_url, f"p{i}", now, start_at) for i in range(3)
        ]
        results = [f.result(timeout=60) for f in futures]
    claimed = [rid for ids in results for rid in ids]
    assert len(claimed) == len(set(claimed)), "a recipient was leased to two processes"
    assert set(claimed) == all_ids



def test_only_leased_rows_are_indexed_by_owner(store: Store, account: Account) -> None:
    """Accepted and finished recipients have no lease owner, so they are left out of the owner
    index that every enqueue and outcome would otherwise write (migration 0008); the domain
    index, which no query used, is gone."""
    _fill(store, account, 2, 2)
    store.claim_due("w1", now=_now(), limit=3, lease_seconds=LEASE)
    engine = store._db.engine
    with engine.connect() as conn:
        names = {ix["name"] for ix in inspect(conn).get_indexes("recipients")}
        if engine.dialect.name == "sqlite":
            where = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_recipients_lease_owner'"
            ).scalar_one()
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN UPDATE recipients SET lease_owner = NULL"
                " WHERE lease_owner = 'w1'"))
            assert "ix_recipients_lease_owner" in plan, plan  # what release_leases runs
        else:
            where = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_recipients_lease_owner'"
            ).scalar_one()
    assert "lease_owner IS NOT NULL" in where
    assert "ix_recipients_domain" not in names
