"""Submission: durable enqueue, group commit, all-or-nothing failures."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from postroom.model import Account, EventType, NewMessage, RecipientStatus
from postroom.store import AlreadyExists, InvalidData, StorageFull, Store, StoreUnavailable
from support.databases import sqlite_url

from .factories import make_message


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def test_enqueue_then_read_back(store: Store, account: Account) -> None:
    raw = b"From: a@acme.test\r\nSubject: Hello\r\n\r\nbody\r\n"
    message = make_message(
        account.id, "Bob@Example.COM", "carol@example.org", raw=raw,
        header_from="a@acme.test", subject="Hello", message_id_header="<x@acme.test>",
        source="api", client_ip="192.0.2.1", options={"track_opens": True, "tags": ["a"]},
    )
    asyncio.run(store.enqueue(message))

    record = store.get_message(message.id)
    assert record is not None
    assert (record.id, record.account_id, record.mail_from) == (
        message.id, account.id, "sender@acme.test"
    )
    assert (record.subject, record.header_from, record.message_id_header) == (
        "Hello", "a@acme.test", "<x@acme.test>"
    )
    assert (record.size, record.source, record.client_ip) == (len(raw), "api", "192.0.2.1")
    assert record.options == {"track_opens": True, "tags": ["a"]}
    assert record.created_at.tzinfo is not None and record.not_before is None
    assert [(r.address, r.domain, r.status) for r in record.recipients] == [
        ("Bob@Example.COM", "example.com", RecipientStatus.QUEUED),
        ("carol@example.org", "example.org", RecipientStatus.QUEUED),
    ]
    assert all(r.attempts == 0 and r.next_attempt_at is not None for r in record.recipients)
    assert store.get_raw(message.id) == raw
    assert store.get_raw("nope") is None and store.get_message("nope") is None

    events = store.list_events(message.id)
    assert [(e.type, e.recipient) for e in events] == [
        (EventType.QUEUED, "Bob@Example.COM"), (EventType.QUEUED, "carol@example.org")
    ]
    assert store.daily_count(account.id, _today()) == 1
    assert store.counts_by_status()["queued"] == 2


def test_scheduled_message(store: Store, account: Account) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    future_msg = make_message(account.id, "a@example.com", not_before=later)
    past_msg = make_message(account.id, "b@example.com", not_before=earlier)
    store.enqueue_many([future_msg, past_msg])

    scheduled = store.get_message(future_msg.id)
    assert scheduled is not None and scheduled.not_before == later
    assert scheduled.recipients[0].status == RecipientStatus.SCHEDULED
    assert scheduled.recipients[0].next_attempt_at == later
    assert store.list_events(future_msg.id)[0].type == EventType.SCHEDULED
    assert store.list_events(future_msg.id)[0].data == {"not_before": later.isoformat()}
    past = store.get_message(past_msg.id)
    assert past is not None and past.recipients[0].status == RecipientStatus.QUEUED


def test_list_messages_newest_first_with_cursor(store: Store, account: Account) -> None:
    other = store.create_account("other")
    ids = []
    for i in range(5):
        message = make_message(account.id if i != 2 else other.id)
        store.enqueue_many([message])
        ids.append(message.id)
    listed = [m.id for m in store.list_messages()]
    assert listed == sorted(ids, reverse=True)
    assert [m.id for m in store.list_messages(limit=2)] == listed[:2]
    assert [m.id for m in store.list_messages(limit=2, before=listed[1])] == listed[2:4]
    assert [m.id for m in store.list_messages(account_id=other.id)] == [ids[2]]
    assert all(m.recipients for m in store.list_messages())


def test_events_pagination_and_append(store: Store, account: Account) -> None:
    message = make_message(account.id, "a@example.com", "b@example.com")
    store.enqueue_many([message])
    event_id = store.append_event(
        EventType.OPENED, message_id=message.id, recipient="a@example.com",
        data={"ip": "192.0.2.9"},
    )
    store.append_event("suppressed", recipient="x@example.com")
    everything = store.list_events()
    assert [e.type for e in everything] == ["queued", "queued", "opened", "suppressed"]
    assert everything[2].id == event_id and everything[2].data == {"ip": "192.0.2.9"}
    assert [e.id for e in store.list_events(after=everything[1].id)] == [
        e.id for e in everything[2:]
    ]
    assert len(store.list_events(limit=1)) == 1
    assert len(store.list_events(message.id)) == 3
    with pytest.raises(ValueError):
        store.append_event("not-a-type")


def test_group_commit_batches_concurrent_enqueues(store: Store, account: Account) -> None:
    before = store.writer.commits

    async def many() -> None:
        await asyncio.gather(*(
            store.enqueue(make_message(account.id, f"r{i}@example.com")) for i in range(200)
        ))

    asyncio.run(many())
    commits = store.writer.commits - before
    assert 1 <= commits <= 40, commits
    assert store.writer.largest_batch > 1
    assert store.daily_count(account.id, _today()) == 200
    assert store.counts_by_status()["queued"] == 200
    assert len(store.list_events(limit=1000)) == 200


def test_enqueue_from_several_threads_and_loops(store: Store, account: Account) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        async def go() -> None:
            await asyncio.gather(*(store.enqueue(make_message(account.id)) for _ in range(25)))

        try:
            asyncio.run(go())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    sync = threading.Thread(
        target=lambda: [store.enqueue_many([make_message(account.id)] * 1) for _ in range(10)]
    )
    for t in [*threads, sync]:
        t.start()
    for t in [*threads, sync]:
        t.join()
    assert errors == []
    assert store.daily_count(account.id, _today()) == 110


def test_duplicate_id_fails_only_its_caller(store: Store, account: Account) -> None:
    original = make_message(account.id, "first@example.com")
    asyncio.run(store.enqueue(original))
    clash = make_message(account.id, "x@example.net", "y@example.net", id=original.id)
    innocent = [make_message(account.id, f"i{i}@example.com") for i in range(20)]

    async def go() -> list[object]:
        calls = [store.enqueue(m) for m in innocent[:10]]
        calls.append(store.enqueue(clash))
        calls += [store.enqueue(m) for m in innocent[10:]]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(go())
    assert isinstance(results[10], AlreadyExists)
    assert [r for i, r in enumerate(results) if i != 10] == [None] * 20
    # Nothing of the failed message was written: no recipients, events or usage.
    record = store.get_message(original.id)
    assert record is not None and [r.address for r in record.recipients] == ["first@example.com"]
    assert [e.recipient for e in store.list_events(original.id)] == ["first@example.com"]
    assert store.daily_count(account.id, _today()) == 21
    assert all(store.get_message(m.id) is not None for m in innocent)


def test_bad_data_fails_only_its_caller(store: Store, account: Account) -> None:
    unencodable = make_message(account.id, options={"when": object()})
    too_long = make_message(account.id, mail_from="x" * 400 + "@example.com")
    innocent = [make_message(account.id) for _ in range(6)]

    async def go() -> list[object]:
        calls = [store.enqueue(m) for m in (innocent[0], unencodable, *innocent[1:3])]
        calls += [store.enqueue(too_long), *(store.enqueue(m) for m in innocent[3:])]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(go())
    assert isinstance(results[1], TypeError)
    if store.dialect == "postgresql":  # SQLite does not enforce VARCHAR lengths
        assert isinstance(results[4], InvalidData)
        assert store.get_message(too_long.id) is None
    assert [r for i, r in enumerate(results) if i not in (1, 4)] == [None] * 6
    assert store.get_message(unencodable.id) is None
    assert all(store.get_message(m.id) is not None for m in innocent)


def test_enqueue_many_is_all_or_nothing(store: Store, account: Account) -> None:
    existing = make_message(account.id)
    store.enqueue_many([existing])
    fresh = make_message(account.id, "new@example.com")
    with pytest.raises(AlreadyExists):
        store.enqueue_many([fresh, make_message(account.id, id=existing.id)])
    assert store.get_message(fresh.id) is None
    assert store.list_events(fresh.id) == []
    assert store.daily_count(account.id, _today()) == 1
    store.enqueue_many([])  # nothing to do


def test_invalid_input_is_rejected_in_the_caller(store: Store, account: Account) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.enqueue_many([make_message(account.id, not_before=datetime(2030, 1, 1))])
    with pytest.raises(ValueError, match="no recipients"):
        store.enqueue_many([
            NewMessage(id="x" * 26, account_id=account.id, mail_from="", recipients=(), raw=b"")
        ])
    assert store.writer.units == 0


def test_enqueue_after_close_is_unavailable(store_url: str) -> None:
    store = Store.open(store_url)
    account = store.create_account("acme")
    store.close()
    with pytest.raises(StoreUnavailable):
        asyncio.run(store.enqueue(make_message(account.id)))


def test_disk_full_fails_the_whole_batch_and_writes_nothing(tmp_path: Path) -> None:
    """A real SQLITE_FULL: the file may not grow past its current size."""
    with Store.open(sqlite_url(tmp_path)) as store:
        account = store.create_account("acme")
        store.enqueue_many([make_message(account.id)])
        with store._db.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

        @event.listens_for(store._db.engine, "connect")
        def cap(dbapi_connection: object, _record: object) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count={pages}")  # type: ignore[attr-defined]

        store._db.engine.dispose()  # reconnect with the cap

        async def go() -> list[object]:
            return await asyncio.gather(
                *(store.enqueue(make_message(account.id, raw=b"x" * 100_000)) for _ in range(8)),
                return_exceptions=True,
            )

        results = asyncio.run(go())
        assert results and all(isinstance(r, StorageFull) for r in results), results
        assert len(store.list_messages()) == 1
        assert store.counts_by_status()["queued"] == 1
        assert store.daily_count(account.id, _today()) == 1
        with pytest.raises(StorageFull):
            store.enqueue_many([make_message(account.id, raw=b"y" * 100_000)])
