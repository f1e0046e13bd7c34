"""The dashboard's bounded message reads (store/dashboard_messages.py) on SQLite and PostgreSQL:
recipient summaries in SQL, the scan budget, ASCII-only case folding, the whole header block,
and the newest part of a long timeline."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import insert

from postroom.model import Account, EventType, RecipientStatus
from postroom.model.ids import new_id
from postroom.store import Store
from postroom.store.dashboard_data import DashboardData, MessageFilter
from postroom.store.dashboard_messages import HEAD_CAP, find_messages, fold, message_head
from postroom.store.schema import events, recipients

from .factories import make_message


def test_the_list_summarises_recipients_without_loading_them(store: Store,
                                                             account: Account) -> None:
    message = make_message(account.id, *[f"r{i}@example.org" for i in range(300)])
    empty_ok = make_message(account.id, "solo@example.net")
    store.enqueue_many([message, empty_ok])
    with store._db.write() as conn:
        conn.execute(recipients.update().where(
            recipients.c.message_id == message.id,
            recipients.c.address.in_(["r1@example.org", "r2@example.org"]))
            .values(status=RecipientStatus.BOUNCED.value))
    rows = {r.id: r for r in DashboardData(store).find_messages(
        account.id, MessageFilter(), limit=10).rows}
    big = rows[message.id]
    assert big.recipients == 300 and big.first == "r0@example.org"
    assert big.statuses == (("bounced", 2), ("queued", 298))
    assert (rows[empty_ok.id].recipients, rows[empty_ok.id].first) == (1, "solo@example.net")


def test_a_filtered_search_stops_at_its_budget_and_goes_on_from_there(
        store: Store, account: Account) -> None:
    """The match is the oldest of 7 messages; a budget of 3 examines 3 per request."""
    ms = int(time.time() * 1000)
    target = make_message(account.id, "rare@example.org", subject="Rare one",
                          options={"tags": ["rare"]}, id=new_id(ms - 10))
    store.enqueue_many([target] + [make_message(account.id, subject=f"Common {i}",
                                                id=new_id(ms - 9 + i)) for i in range(6)])
    db = store._db
    for where in (MessageFilter(subject="rare"), MessageFilter(tag="rare"),
                  MessageFilter(recipient="RARE@"), MessageFilter(status="bounced")):
        seen: list[str] = []
        cursor, rounds, stops = None, 0, 0
        while True:
            page = find_messages(db, account.id, where, limit=5, before=cursor, budget=3)
            rounds += 1
            seen += [r.id for r in page.rows]
            stops += page.stopped_at is not None
            if page.next_before is None:
                break
            cursor = page.next_before
        expected = [] if where.status else [target.id]
        assert seen == expected and rounds == 3 and stops == 2, where
    unfiltered = find_messages(db, account.id, MessageFilter(), limit=5, budget=3)
    assert len(unfiltered.rows) == 5 and unfiltered.stopped_at is None  # no scan: no budget


def test_text_filters_ignore_ascii_case_only_on_both_backends(store: Store,
                                                              account: Account) -> None:
    umlaut = make_message(account.id, "Jürgen@Example.org", subject="Ärger im Büro")
    ete = make_message(account.id, subject="ÉTÉ 2025 — NOUVEAUTÉS", header_from="Élise <e@x>")
    store.enqueue_many([umlaut, ete])
    data = DashboardData(store)

    def find(**kw: str) -> set[str]:
        return {r.id for r in data.find_messages(account.id, MessageFilter(**kw),
                                                 limit=10).rows}

    assert find(subject="Ärger") == {umlaut.id}  # as written: found
    assert find(subject="ärger IM büro") == set()  # Ä and ä differ beyond ASCII, everywhere
    assert find(subject="RGER im BüRO") == {umlaut.id}
    assert find(subject="ÉTÉ") == {ete.id} and find(subject="été") == set()
    assert find(subject="nouveautÉs") == {ete.id} and find(sender="élise") == set()
    assert find(recipient="jürgen@EXAMPLE") == {umlaut.id} and find(recipient="JÜRGEN") == set()
    assert fold("ÄrGer") == "Ärger"


def test_the_whole_header_block_is_read_up_to_a_cap(store: Store, account: Account) -> None:
    cc = b"Cc: " + b",\r\n ".join(b"member%05d@list.example.org" % i for i in range(3000))
    long_head = b"From: a@acme.test\r\n" + cc + b"\r\nSubject: Late\r\n"
    huge_head = b"X-Pad: " + b"p" * HEAD_CAP + b"\r\nSubject: lost\r\n"
    short, long, huge, bare = (
        make_message(account.id, raw=b"From: a@acme.test\r\n\r\n" + b"x" * 100_000),
        make_message(account.id, raw=long_head + b"\r\n" + b"body" * 50_000),
        make_message(account.id, raw=huge_head + b"\r\nbody"),
        make_message(account.id, raw=b"Subject: only headers\r\n"))
    store.enqueue_many([short, long, huge, bare])
    db = store._db
    assert message_head(db, short.id).data == b"From: a@acme.test"  # never the body
    got = message_head(db, long.id)
    assert got.complete and got.data == long_head[:-2] and len(got.data) > 64 * 1024
    got = message_head(db, huge.id)
    assert not got.complete and len(got.data) == HEAD_CAP and b"lost" not in got.data
    got = message_head(db, bare.id)
    assert got.complete and got.data == b"Subject: only headers\r\n"
    assert message_head(db, "nope").data == b""


def test_a_long_timeline_shows_its_newest_events_and_counts_the_earlier(
        store: Store, account: Account) -> None:
    message = make_message(account.id)
    store.enqueue_many([message])  # one `queued` event
    now = datetime.now(UTC)
    with store._db.write() as conn:
        conn.execute(insert(events), [
            {"type": "opened", "message_id": message.id, "recipient": "rcpt@example.com",
             "at": now, "data": {"n": i}} for i in range(1000)])
    store.append_event(EventType.COMPLAINED, message_id=message.id, recipient="rcpt@example.com")
    data = DashboardData(store)
    newest = data.message_events(message.id, limit=200)
    assert len(newest.events) == 200 and newest.earlier == 802
    assert newest.events[-1].type is EventType.COMPLAINED
    assert [e.id for e in newest.events] == sorted(e.id for e in newest.events)
    older = data.message_events(message.id, limit=200, before=newest.events[0].id)
    assert older.events[-1].id < newest.events[0].id and older.earlier == 602
    oldest = data.message_events(message.id, limit=2000, before=older.events[0].id)
    assert oldest.earlier == 0 and oldest.events[0].type is EventType.QUEUED
    assert len(oldest.events) == 602
    assert data.message_events("nope", limit=10).events == []
