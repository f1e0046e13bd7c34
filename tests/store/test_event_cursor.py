"""The events cursor of the HTTP API (`Store.find_events(after=)`) never skips an event.

On PostgreSQL event ids come from a sequence taken before commit: a transaction can take id 5,
another id 6 and commit first. A reader that saw 6 and moved its cursor there must still get 5
once its transaction commits. SQLite has one writer at a time, so ids are commit order there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from postroom.model import Account, EventType
from postroom.store import Store
from postroom.store.migrate import alembic_config, migrate
from postroom.store.rows import utc_now
from support.databases import postgres_url_or_skip
from support.settle import insert_event, open_transaction, settle

from .factories import make_message


class Client:
    """An API client polling the log: it passes the id of the last event it got as cursor."""

    def __init__(self, store: Store, account_id: str) -> None:
        self.store, self.account_id = store, account_id
        self.cursor: int | None = None
        self.seen: list[int] = []

    def poll(self, limit: int = 100, *, wait: bool = True) -> list[int]:
        """Everything new. `wait`: first let every running transaction end (the PostgreSQL
        server is shared with other tests, whose transactions hold events back a moment)."""
        if wait:
            settle(self.store)
        got: list[int] = []
        while True:
            page = self.store.find_events(self.account_id, limit=limit, after=self.cursor)
            got += [e.id for e in page]
            if page:
                self.cursor = page[-1].id
            if len(page) < limit:
                self.seen += got
                return got


@pytest.fixture
def pg_store() -> Iterator[Store]:
    opened = Store.open(postgres_url_or_skip())
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.postgres
def test_event_committed_after_a_later_id_is_not_skipped(pg_store: Store) -> None:
    """T1 takes an id and stays open, T2 takes a higher one and commits, the client reads;
    then T1 commits: the client's next poll must bring T1's event (it used to be lost)."""
    account = pg_store.create_account("acme", sender_domains=["acme.test"])
    message = make_message(account.id, "a@example.com", "b@example.com")
    pg_store.enqueue_many([message])
    client = Client(pg_store, account.id)
    before = client.poll()
    assert len(before) == 2  # the two `queued` events

    with open_transaction(pg_store) as t1:
        first = insert_event(t1, message.id, "a@example.com")
        with open_transaction(pg_store) as t2:
            second = insert_event(t2, message.id, "b@example.com")
        assert second > first
        client.poll(wait=False)  # T2 has committed, T1 has not
    client.poll()  # T1 has committed
    client.poll()

    assert sorted(client.seen) == sorted([*before, first, second])
    assert len(set(client.seen)) == len(client.seen)  # and nothing twice


@pytest.mark.postgres
def test_events_wait_for_every_olderopen_transaction(pg_store: Store) -> None:
    """Served events are final: nothing can later appear before the last one served."""
    account = pg_store.create_account("acme", sender_domains=["acme.test"])
    message = make_message(account.id)
    pg_store.enqueue_many([message])
    client = Client(pg_store, account.id)
    client.poll()
    with open_transaction(pg_store) as t1:
        first = insert_event(t1, message.id, "x@example.com")
        with open_transaction(pg_store) as t2:
            second = insert_event(t2, message.id, "y@example.com")
        assert client.poll(wait=False) == []  # T2's event waits behind T1, still open
    assert client.poll() == [first, second]


def test_pages_in_order_with_the_last_id_as_cursor(store: Store, account: Account) -> None:
    """Both backends: full pages chain through the whole log, oldest first, each event once."""
    message = make_message(account.id, *(f"r{i}@example.com" for i in range(7)))
    store.enqueue_many([message])
    ids = [store.append_event(EventType.OPENED, message_id=message.id) for _ in range(5)]
    settle(store)
    everything = [e.id for e in store.find_events(account.id, limit=1000)]
    assert len(everything) == 12 and everything[-5:] == ids
    client = Client(store, account.id)
    assert client.poll(limit=5) == everything
    assert client.poll(limit=5) == []
    later = store.append_event(EventType.CLICKED, message_id=message.id)
    assert client.poll(limit=5) == [later]
    # filters still apply with a cursor
    assert [e.id for e in store.find_events(account.id, type_="opened", limit=2,
                                            after=ids[1])] == ids[2:4]
    assert store.find_events(account.id, limit=10, after=later) == []


def test_cursor_that_names_no_event(store: Store, account: Account) -> None:
    """0 means from the start; another account's event id is a valid position in the log."""
    message = make_message(account.id)
    store.enqueue_many([message])
    ids = [store.append_event(EventType.OPENED, message_id=message.id) for _ in range(3)]
    settle(store)
    everything = [e.id for e in store.find_events(account.id, limit=100)]
    assert [e.id for e in store.find_events(account.id, limit=100, after=0)] == everything
    other = store.create_account("other", sender_domains=["other.test"])
    foreign = make_message(other.id)
    store.enqueue_many([foreign])  # an event of another account: a valid position, not ours
    tail = store.append_event(EventType.OPENED, message_id=message.id)
    settle(store)
    foreign_id = store.find_events(other.id, limit=10)[0].id
    assert [e.id for e in store.find_events(account.id, limit=100, after=foreign_id)] == [tail]
    assert ids[-1] < tail


def test_events_from_before_0009_keep_their_order(store_url: str) -> None:
    """0009 gives existing events xact_id 0 on PostgreSQL (NULL on SQLite): a cursor handed out
    before the upgrade resumes with the rest of them in id order, then the new events."""
    old = Store(store_url)
    if old.schema_revision() is not None:  # the PostgreSQL fixture comes migrated
        with old._db.write() as conn:
            command.downgrade(alembic_config(conn), "base")
    migrate(old._db, "0008")
    account = old.create_account("acme", sender_domains=["acme.test"])
    message = make_message(account.id)
    old.enqueue_many([message])
    table = sa.table("events", *(sa.column(n) for n in ("type", "message_id", "at")),
                     sa.column("data", sa.JSON()))
    with old._db.write() as conn:
        for _ in range(4):
            conn.execute(table.insert().values(type="opened", message_id=message.id,
                                               at=utc_now().replace(tzinfo=None), data={}))
    old.close()

    with Store.open(store_url) as store:
        with store._db.read() as conn:
            marks = conn.execute(sa.text("SELECT DISTINCT xact_id FROM events")).scalars().all()
        assert marks == ([None] if store.dialect == "sqlite" else [0])
        settle(store)  # 0009's own transaction
        ids = [e.id for e in store.find_events(account.id, limit=100)]
        assert len(ids) == 5 and ids == sorted(ids)
        new = store.append_event(EventType.CLICKED, message_id=message.id)
        settle(store)
        assert [e.id for e in store.find_events(account.id, limit=100, after=ids[1])] == [
            *ids[2:], new]
