"""The commit deadline: a caller whose commit is stuck hears StoreUnavailable in bounded time,
and the message, once the store gets through, is committed after all (a duplicate, never a loss).

The writer is made to hang for real: on SQLite another process holds the write lock
(`<db>-writer.lock`, whose cross-process wait has no deadline of its own); on PostgreSQL another
connection holds an exclusive lock on the messages table.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from postroom.model import Account
from postroom.store import InvalidData, Store, StoreUnavailable
from support.write_lock import write_lock_held

from .factories import make_message


@contextlib.contextmanager
def writer_stuck(store_url: str) -> Iterator[None]:
    """Block every write transaction on the store until the block ends."""
    if store_url.startswith("sqlite"):
        with write_lock_held(Path(store_url.removeprefix("sqlite:///"))):
            yield
        return
    with psycopg.connect(store_url.replace("postgresql+psycopg", "postgresql")) as conn:
        conn.execute("LOCK TABLE messages IN EXCLUSIVE MODE")
        yield
        conn.rollback()


def _wait_for(store: Store, message_id: str, seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if store.get_message(message_id) is not None:
            return True
        time.sleep(0.05)
    return False


def test_a_stuck_commit_lands_late_and_a_queued_one_is_dropped(store_url: str) -> None:
    """The first caller's unit is inside the stuck transaction: it times out, then lands. The
    second one's is still queued at its deadline: it is dropped, so a client retrying through a
    stall does not pile up copies."""
    store = Store.open(store_url, commit_timeout=0.5)
    try:
        account: Account = store.create_account("acme", sender_domains=["acme.test"])
        inside, queued = (make_message(account.id, "r@example.org") for _ in range(2))
        with writer_stuck(store_url):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable,
                               match=r"within 0\.5 s \(it may still complete\)"):
                asyncio.run(store.enqueue(inside))
            assert 0.4 <= time.monotonic() - started < 5.0
            with pytest.raises(StoreUnavailable, match=r"within 0\.5 s \(it was dropped\)"):
                asyncio.run(store.enqueue(queued))
            assert store.get_message(inside.id) is None  # still stuck, not committed
        assert _wait_for(store, inside.id), "the late commit never landed"
        asyncio.run(store.enqueue(make_message(account.id, "r@example.org")))  # after all else
        assert store.get_message(queued.id) is None
        assert store.writer.units == 2  # the dropped one never reached the writer
    finally:
        store.close()


def test_blocking_enqueue_gives_up_too(store_url: str) -> None:
    store = Store.open(store_url, commit_timeout=0.5)
    try:
        account = store.create_account("acme", sender_domains=["acme.test"])
        message = make_message(account.id, "r@example.org")
        with writer_stuck(store_url):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="did not finish"):
                store.enqueue_many([message])
            assert time.monotonic() - started < 5.0
        assert _wait_for(store, message.id)
    finally:
        store.close()


def test_a_vanished_spool_file_fails_its_own_unit_only(store_url: str, tmp_path: Path) -> None:
    """A large message's body is read from its spool file at commit time; a session whose
    caller timed out removes that file. Only that unit fails; its batch-mates commit."""
    store = Store.open(store_url, commit_timeout=30)
    try:
        account = store.create_account("acme", sender_domains=["acme.test"])
        first, healthy = (make_message(account.id, "r@example.org") for _ in range(2))
        spooled = dataclasses.replace(make_message(account.id, "r@example.org"),
                                      body_path=str(tmp_path / "gone.eml"))

        async def main() -> list[BaseException | None]:
            stuck = asyncio.create_task(store.enqueue(first))  # the writer takes it, and waits
            await asyncio.sleep(0.3)
            later = asyncio.gather(store.enqueue(spooled), store.enqueue(healthy),
                                   return_exceptions=True)  # both queued: one batch later
            await asyncio.sleep(0.3)
            return [stuck, later]  # type: ignore[list-item]

        with writer_stuck(store_url):
            loop = asyncio.new_event_loop()
            stuck, later = loop.run_until_complete(main())  # type: ignore[misc]
        try:
            loop.run_until_complete(stuck)
            bad, good = loop.run_until_complete(later)
        finally:
            loop.close()
        assert isinstance(bad, InvalidData) and "spooled body" in str(bad)
        assert good is None
        assert store.get_message(healthy.id) is not None
        assert store.get_message(spooled.id) is None
    finally:
        store.close()


def test_an_ingress_child_gives_up_on_a_silent_parent(tmp_path: Path) -> None:
    """`[smtp] processes > 1`: the child's own deadline covers a parent that never answers."""
    from postroom.store.writer_link import RemoteEnqueue

    store = Store.open(f"sqlite:///{tmp_path / 'p.db'}", commit_timeout=0.3)
    path = tmp_path / "writer.sock"
    received: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))  # takes the request, never replies
        await asyncio.sleep(30)

    async def main() -> float:
        server = await asyncio.start_unix_server(silent, path=str(path))
        try:
            remote = RemoteEnqueue(store, path)
            account = store.create_account("acme", sender_domains=["acme.test"])
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"did not finish within 0\.3 s"):
                await remote.enqueue(make_message(account.id, "r@example.org"))
            return time.monotonic() - started
        finally:
            server.close()

    try:
        waited = asyncio.run(main())
    finally:
        store.close()
    assert received and received[0], "the request never reached the parent"
    assert 0.25 <= waited < 5.0
