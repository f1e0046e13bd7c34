"""`Store.list_events(after=)` (what `postroom messages show` pages with) never skips an event.

On PostgreSQL event ids come from a sequence taken before commit: a transaction can take id 5,
another id 6 and commit first. A reader whose page ended at 6 must still get 5 once its
transaction commits. Pages a reader may go on from follow the rule of the HTTP events cursor
(store/xact.py); a short first page is the whole log as it stands and is served at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from postroom.model import Account, EventType
from postroom.store import Store, reads
from support.databases import postgres_url_or_skip
from support.settle import insert_event, open_transaction, settle

from .factories import make_message


class Reader:
    """Pages through one message's events as `messages show` does, keeping its cursor."""

    def __init__(self, store: Store, message_id: str, page: int) -> None:
        self.store, self.message_id, self.page = store, message_id, page
        self.cursor: int | None = None
        self.seen: list[int] = []

    def read(self, *, wait: bool = True) -> list[int]:
        """Every page until a short one. `wait`: first let every running transaction end
        (the PostgreSQL server is shared with other tests)."""
        if wait:
            settle(self.store)
        got: list[int] = []
        while True:
            page = self.store.list_events(self.message_id, limit=self.page, after=self.cursor)
            got += [e.id for e in page]
            if page:
                self.cursor = page[-1].id
            if len(page) < self.page:
                self.seen += got
                return got


@pytest.fixture
def pg_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setattr(reads, "SETTLE_SECONDS", 1.0)  # T1 below stays open on purpose
    opened = Store.open(postgres_url_or_skip())
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.postgres
def test_an_event_committed_after_a_later_id_is_not_skipped(pg_store: Store) -> None:
    """T1 takes an id and stays open, T2 takes a higher one and commits, the reader pages;
    then T1 commits: the reader's next pages must bring T1's event (they used to skip it)."""
    account = pg_store.create_account("acme", sender_domains=["acme.test"])
    message = make_message(account.id, "a@example.com", "b@example.com")
    pg_store.enqueue_many([message])
    reader = Reader(pg_store, message.id, page=2)
    before = reader.read()
    assert len(before) == 2  # the two `queued` events

    with open_transaction(pg_store) as t1:
        first = insert_event(t1, message.id, "a@example.com", EventType.OPENED)
        with open_transaction(pg_store) as t2:
            second = insert_event(t2, message.id, "b@example.com", EventType.OPENED)
        assert second > first
        reader.read(wait=False)  # T2 has committed, T1 has not
    reader.read()  # T1 has committed
    reader.read()

    assert sorted(reader.seen) == sorted([*before, first, second])
    assert len(set(reader.seen)) == len(reader.seen)  # and nothing twice


@pytest.mark.postgres
def test_a_page_waits_briefly_for_older_transactions(pg_store: Store) -> None:
    """A transaction that ends within the wait holds nothing back; a short first page does
    not wait at all (it is the whole log as it stands)."""
    account = pg_store.create_account("acme", sender_domains=["acme.test"])
    message = make_message(account.id)
    pg_store.enqueue_many([message])
    queued = pg_store.list_events(message.id)[0].id
    with open_transaction(pg_store) as t1:
        first = insert_event(t1, message.id, "x@example.com", EventType.OPENED)
        with open_transaction(pg_store) as t2:
            second = insert_event(t2, message.id, "y@example.com", EventType.OPENED)
        started = time.monotonic()
        assert [e.id for e in pg_store.list_events(message.id)] == [queued, second]
        assert time.monotonic() - started < 0.5
        started = time.monotonic()
        assert pg_store.list_events(message.id, after=queued) == []  # behind T1: held
        assert time.monotonic() - started >= 1.0  # after waiting for T1 to end
    settle(pg_store)
    assert [e.id for e in pg_store.list_events(message.id, after=queued)] == [first, second]


def test_pages_chain_through_the_whole_history(store: Store, account: Account) -> None:
    """Both backends: full pages, oldest first, each event once; other messages' events and
    a cursor from another message are no trouble."""
    message = make_message(account.id, *(f"r{i}@example.com" for i in range(3)))
    other = make_message(account.id)
    store.enqueue_many([message, other])
    ids = [store.append_event(EventType.OPENED, message_id=message.id) for _ in range(6)]
    store.append_event(EventType.OPENED, message_id=other.id)
    reader = Reader(store, message.id, page=4)
    everything = reader.read()
    assert len(everything) == 9 and everything[-6:] == ids
    assert reader.read() == []
    later = store.append_event(EventType.CLICKED, message_id=message.id)
    assert reader.read() == [later]
    foreign = store.list_events(other.id)[-1].id
    settle(store)
    assert [e.id for e in store.list_events(message.id, limit=100, after=foreign)] == [
        e for e in [*everything, later] if e > foreign]
