"""Reports that Postroom may receive more than once are recorded once, also when two ingress
processes write them at the same moment: an asynchronous bounce per recipient, a complaint and
an unsubscribe per (message, recipient). Each racer here has its own thread and connection;
on PostgreSQL the bounce racers are held at the recipient's row until all of them are inside
their transactions, so the race is certain, not left to the scheduler."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import func, select, text

from postroom.model import Account, EventType
from postroom.store import Store
from postroom.store.schema import events, recipients

from .factories import make_message

T = TypeVar("T")
RACERS = 4


def race(n: int, fn: Callable[[int], T], *, held: Any = None) -> list[T]:
    """Run fn(0) … fn(n-1) in n threads released together; `held(n)` (a context manager
    factory) may keep them waiting inside their transactions until all n are there."""
    start = threading.Barrier(n)

    def go(i: int) -> T:
        start.wait(10)
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        with held(n) if held else nullcontext():
            futures = [pool.submit(go, i) for i in range(n)]
        return [f.result(30) for f in futures]


def _waiting_on_locks(store: Store) -> int:
    with store._db.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar() or 0)


def holding_row(store: Store, recipient_id: int) -> Callable[[int], Any]:
    """PostgreSQL: lock the recipient's row until n other transactions wait for it."""

    @contextmanager
    def held(n: int) -> Iterator[None]:
        if store.dialect == "sqlite":  # one writer at a time: the racers queue anyway
            yield
            return
        with store._db.engine.connect() as conn, conn.begin():
            conn.execute(select(recipients.c.id).where(recipients.c.id == recipient_id)
                         .with_for_update())
            yield
            deadline = time.monotonic() + 10
            while _waiting_on_locks(store) < n and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _waiting_on_locks(store) == n

    return held


def _events(store: Store, kind: EventType, message_id: str) -> list[str | None]:
    return [e.recipient for e in store.list_events(message_id) if e.type is kind]


def test_racing_async_bounces_record_once(store: Store, account: Account) -> None:
    msg = make_message(account.id, "gone@rcpt.test", "other@rcpt.test")
    store.enqueue_many([msg])
    record = store.get_message(msg.id)
    assert record is not None
    rid = next(r.id for r in record.recipients if r.address == "gone@rcpt.test")

    def bounce(_: int) -> Any:
        return store.record_async_bounce(msg.id, rid, reply="5.1.1 user unknown", hard=True,
                                         data={"status": "5.1.1"})

    results = race(RACERS, bounce, held=holding_row(store, rid))
    assert sorted(results, key=bool) == [None] * (RACERS - 1) + [(account.id, "gone@rcpt.test")]
    assert _events(store, EventType.BOUNCED, msg.id) == ["gone@rcpt.test"]
    assert [s.address for s in store.list_suppressions(account.id)] == ["gone@rcpt.test"]
    # the same report later, and an unknown recipient: nothing, and no error
    assert bounce(0) is None
    assert store.record_async_bounce(msg.id, rid + 1000, reply="x", hard=True, data={}) is None
    assert _events(store, EventType.BOUNCED, msg.id) == ["gone@rcpt.test"]
    # the other recipient's bounce is its own
    other = next(r.id for r in record.recipients if r.address == "other@rcpt.test")
    assert store.record_async_bounce(msg.id, other, reply="5.2.2 full", hard=False,
                                     data={}) == (account.id, "other@rcpt.test")
    assert sorted(_events(store, EventType.BOUNCED, msg.id)) == [  # type: ignore[type-var]
        "gone@rcpt.test", "other@rcpt.test"]


def test_racing_complaints_record_once_per_message_and_recipient(
    store: Store, account: Account,
) -> None:
    first = make_message(account.id, "a@rcpt.test", "b@rcpt.test")
    second = make_message(account.id, "a@rcpt.test")
    store.enqueue_many([first, second])
    for rounds in range(5):
        keys = [(first.id, "a@rcpt.test"), (first.id, "B@rcpt.test"), (second.id, "A@rcpt.test")]

        def complain(i: int, keys: list[tuple[str, str]] = keys, n: int = rounds) -> int:
            message_id, rcpt = keys[i % len(keys)]
            return store.record_complaint(account.id, message_id, rcpt, {"round": n})

        ids = race(2 * len(keys), complain)
        assert len(set(ids)) == len(keys)  # a repeat answers with the id that records it
    assert sorted(_events(store, EventType.COMPLAINED, first.id)) == [  # type: ignore[type-var]
        "a@rcpt.test", "b@rcpt.test"]
    assert _events(store, EventType.COMPLAINED, second.id) == ["a@rcpt.test"]
    assert {s.address for s in store.list_suppressions(account.id)} == {
        "a@rcpt.test", "b@rcpt.test"}


def test_racing_unsubscribes_record_once(store: Store, account: Account) -> None:
    msg = make_message(account.id, "leaver@rcpt.test", "other@rcpt.test")
    store.enqueue_many([msg])
    for _ in range(5):
        race(RACERS, lambda i: store.append_event(
            EventType.UNSUBSCRIBED, message_id=msg.id,
            recipient="leaver@rcpt.test" if i % 2 else "Leaver@rcpt.test", data={"n": i}))
    assert [r and r.lower() for r in _events(store, EventType.UNSUBSCRIBED, msg.id)] == [
        "leaver@rcpt.test"]
    store.append_event(EventType.UNSUBSCRIBED, message_id=msg.id, recipient="other@rcpt.test")
    assert len(_events(store, EventType.UNSUBSCRIBED, msg.id)) == 2


def test_opens_and_clicks_are_recorded_each_time(store: Store, account: Account) -> None:
    msg = make_message(account.id, "reader@rcpt.test")
    store.enqueue_many([msg])
    for kind in (EventType.OPENED, EventType.OPENED, EventType.CLICKED, EventType.CLICKED):
        store.append_event(kind, message_id=msg.id, recipient="reader@rcpt.test")
    with store._db.read() as conn:
        count = conn.execute(select(func.count()).select_from(events).where(
            events.c.message_id == msg.id, events.c.type.in_(["opened", "clicked"]))).scalar()
    assert count == 4
