"""Recording many outcomes at once (`record_outcomes`): every field lands, per recipient, for
the lease owner only, with one event each."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from postroom.model import Account, EventType, RecipientStatus
from postroom.store import Store
from postroom.store.outbound import Finish
from store.factories import make_message


def _claimed(store: Store, account: Account, count: int, owner: str) -> list[int]:
    message = make_message(account.id, *(f"r{i}@d{i % 7}.example" for i in range(count)))
    asyncio.run(store.enqueue(message))
    claims = store.claim_due(owner, now=datetime.now(UTC) + timedelta(seconds=1), limit=count,
                             lease_seconds=300)
    assert len(claims) == count
    return sorted(c.recipient_id for c in claims)


def test_many_outcomes_land_for_the_owner_only(store: Store, account: Account) -> None:
    ids = _claimed(store, account, 150, "w1")
    taken = set(ids[::10])  # these leases were taken over by another worker meanwhile
    with store._db.write() as conn:
        marks = ",".join(str(i) for i in taken)
        conn.exec_driver_sql(f"UPDATE recipients SET lease_owner = 'w2' WHERE id IN ({marks})")
        conn.exec_driver_sql("UPDATE recipients SET remote_host = 'old.example'")
    later = datetime.now(UTC) + timedelta(minutes=5)
    items = []
    for n, rid in enumerate(ids):
        if n % 3 == 0:
            items.append(Finish(rid, RecipientStatus.DELIVERED, f"250 ok {rid}", 1,
                                remote_host=f"mx{rid}.example"))
        elif n % 3 == 1:
            items.append(Finish(rid, RecipientStatus.DEFERRED, f"451 later {rid}", 2,
                                next_attempt_at=later))
        else:
            items.append(Finish(rid, RecipientStatus.BOUNCED, f"550 no {rid}", 3,
                                remote_host=None, data={"category": "invalid"}))
    recorded = store.record_outcomes("w1", items)
    assert recorded == set(ids) - taken

    record = store.get_message(store.list_events(limit=1)[0].message_id or "")
    assert record is not None
    by_id = {r.id: r for r in record.recipients}
    events = {e.recipient: e for e in store.list_events(limit=1000)
              if e.type is not EventType.QUEUED}
    assert len(events) == len(recorded)
    for item in items:
        r = by_id[item.recipient_id]
        if item.recipient_id in taken:
            assert r.status is RecipientStatus.QUEUED and r.last_reply is None
            assert r.address not in events
            continue
        assert (r.status, r.last_reply, r.attempts) == (item.status, item.reply, item.attempt)
        event = events[r.address]
        assert (event.type.value, event.reply, event.attempt) == (
            item.status.value, item.reply, item.attempt)
        if item.status is RecipientStatus.DELIVERED:
            assert r.remote_host == event.remote_host == f"mx{r.id}.example"
        if item.status is RecipientStatus.DEFERRED:
            assert r.next_attempt_at == later and r.remote_host == "old.example"  # kept
        if item.status is RecipientStatus.BOUNCED:
            assert r.remote_host is None and event.data == {"category": "invalid"}  # set to none
    with store._db.read() as conn:
        leased = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM recipients WHERE lease_owner IS NOT NULL").scalar()
    assert leased == len(taken)  # the recorded ones were released; w2's leases stand


def test_one_recipient_twice_records_the_first_only(store: Store, account: Account) -> None:
    (rid,) = _claimed(store, account, 1, "w1")
    items = [Finish(rid, RecipientStatus.DELIVERED, "250 first", 1, remote_host="mx1"),
             Finish(rid, RecipientStatus.BOUNCED, "550 second", 1, remote_host="mx2")]
    assert store.record_outcomes("w1", items) == {rid}
    events = [e for e in store.list_events(limit=100) if e.type is not EventType.QUEUED]
    assert [(e.type, e.reply) for e in events] == [(EventType.DELIVERED, "250 first")]
