"""The dashboard's reads (store/dashboard_data.py) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from postroom.model import Account, EventType
from postroom.store import Store
from postroom.store.dashboard_data import MESSAGES, DashboardData, MessageFilter, MessagePage
from postroom.store.schema import events

from .factories import make_message


def _ids(found: MessagePage) -> list[str]:
    return [m.id for m in found.rows]


def test_active_key_is_gone_once_revoked(store: Store, account: Account) -> None:
    data = DashboardData(store)
    key = store.create_api_key(account.id, key_hash="h" * 64, prefix="pr_1", scopes=["read"])
    found = data.active_key(key.id)
    assert found is not None and found[0] == key and found[1].id == account.id
    assert store.revoke_api_key(key.id)
    assert data.active_key(key.id) is None
    assert data.active_key("nope") is None


def test_find_messages_filters_pages_and_keeps_accounts_apart(store: Store,
                                                              account: Account) -> None:
    other = store.create_account("other", sender_domains=["other.test"])
    data = DashboardData(store)
    store.enqueue_many([
        make_message(account.id, "Ann@Example.com", "bob@example.com", subject="Spring SALE",
                     header_from="Shop <news@acme.test>", options={"tags": ["promo"]}),
        make_message(account.id, "carl@example.org", subject="100% off_today",
                     mail_from="billing@acme.test", options={"campaign_id": "c1"}),
        make_message(account.id, "dora@example.net", subject="Receipt"),
        make_message(other.id, "ann@example.com", subject="Spring SALE"),
    ])
    found = data.find_messages(account.id, MessageFilter(), limit=10)
    newest = _ids(found)
    assert len(newest) == 3 and newest == sorted(newest, reverse=True)
    by_subject = {m.subject: m.id for m in found.rows}  # ids made in one millisecond: any order
    sale, off = by_subject["Spring SALE"], by_subject["100% off_today"]

    def find(**kw: str) -> list[str]:
        return _ids(data.find_messages(account.id, MessageFilter(**kw), limit=10))

    assert find(recipient="ann@EXAMPLE") == [sale]
    assert find(recipient="example.") == newest
    assert find(sender="NEWS@") == [sale]  # the header From
    assert find(sender="billing") == [off]  # the envelope sender
    assert find(subject="sale") == [sale]
    assert find(subject="100%") == [off] and find(subject="f_t") == [off]  # LIKE escaped
    assert find(subject="0%_") == []
    assert find(status="queued") == newest and find(status="delivered") == []
    assert find(tag="promo") == [sale] and find(campaign="c1") == [off]
    assert find(tag="promo", subject="receipt") == []
    first = data.find_messages(account.id, MessageFilter(), limit=2)
    assert _ids(first) == newest[:2]
    assert first.next_before == newest[1] and first.stopped_at is None
    last = data.find_messages(account.id, MessageFilter(), limit=2, before=first.next_before)
    assert _ids(last) == newest[2:] and last.next_before is None
    [row] = data.find_messages(account.id, MessageFilter(subject="sale"), limit=5).rows
    assert (row.recipients, row.first, row.statuses) == (2, "Ann@Example.com", (("queued", 2),))


def test_activity_counts_per_window_and_day(store: Store, account: Account) -> None:
    other = store.create_account("other", sender_domains=["other.test"])
    mine, theirs = make_message(account.id), make_message(other.id)
    store.enqueue_many([mine, theirs])  # one `queued` event each, now
    now = datetime.now(UTC)
    at = {"delivered": [now - timedelta(hours=2), now - timedelta(hours=30)],
          "opened": [now - timedelta(days=3)], "bounced": [now - timedelta(days=8)]}
    with store._db.write() as conn:
        for kind, times in at.items():
            for t in times:
                for message in (mine, theirs):
                    conn.execute(insert(events).values(type=kind, message_id=message.id,
                                                       recipient="rcpt@example.com", at=t,
                                                       data={}))
    counts = DashboardData(store).activity(account.id, now)
    assert counts["24h"] == {MESSAGES: 1, EventType.QUEUED: 1, "delivered": 1}
    assert counts["7d"] == {MESSAGES: 1, EventType.QUEUED: 1, "delivered": 2, "opened": 1}
    days = [k for k in counts if k not in ("24h", "7d")]
    assert len(days) == 7 and days[-1] == now.date().isoformat()
    expected: dict[str, dict[str, int]] = {d: {} for d in days}
    expected[days[-1]] = {MESSAGES: 1, "queued": 1}
    for kind, times in at.items():
        for t in times:
            label = t.date().isoformat()
            if label in expected:
                expected[label][kind] = expected[label].get(kind, 0) + 1
    assert {d: counts[d] for d in days} == expected


def test_find_suppressions_searches_and_pages(store: Store, account: Account) -> None:
    other = store.create_account("other", sender_domains=["other.test"])
    for address in ("a@x.test", "b_1@x.test", "b@y.test", "c@x.test"):
        store.add_suppression(account.id, address, "manual")
    store.add_suppression(other.id, "a@z.test", "bounce")
    data = DashboardData(store)

    def find(**kw: object) -> list[str]:
        return [s.address for s in data.find_suppressions(account.id, **kw)]  # type: ignore[arg-type]

    assert find() == ["a@x.test", "b@y.test", "b_1@x.test", "c@x.test"]
    assert find(search="X.TEST") == ["a@x.test", "b_1@x.test", "c@x.test"]
    assert find(search="_") == ["b_1@x.test"]  # LIKE wildcards are escaped
    assert find(limit=2) == ["a@x.test", "b@y.test"]
    assert find(limit=2, after="b@y.test") == ["b_1@x.test", "c@x.test"]
    assert find(search="z.test") == []
