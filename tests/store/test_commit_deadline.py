"""The commit deadline: a caller whose commit is stuck hears StoreUnavailable in bounded time,
and the message, once the store gets through, is committed after all (a duplicate, never a loss).

The writer is made to hang for real: on SQLite another process holds the write lock
(`<db>-writer.lock`, whose cross-process wait has no deadline of its own); on PostgreSQL another
connection holds an exclusive lock on the messages table.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from postroom.model import Account
from postroom.store import Store, StoreUnavailable
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


def test_async_enqueue_gives_up_then_the_late_commit_lands(store_url: str) -> None:
    store = Store.open(store_url, commit_timeout=0.5)
    try:
        account: Account = store.create_account("acme", sender_domains=["acme.test"])
        message = make_message(account.id, "r@example.org")
        with writer_stuck(store_url):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"did not finish within 0\.5 s"):
                asyncio.run(store.enqueue(message))
            waited = time.monotonic() - started
            assert 0.4 <= waited < 5.0
            assert store.get_message(message.id) is None  # still stuck, not committed
        assert _wait_for(store, message.id), "the late commit never landed"
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
