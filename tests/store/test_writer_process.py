"""The writer process's loop and the ingress's link to it, on both backends.

The loop (`Writer.run`) runs in a thread here, so a test can stop it and read its counters;
tests/e2e/test_writer_process.py drives the real process behind `postroom serve`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from postroom.model import Account, NewMessage
from postroom.store import InvalidData, Store, StoreUnavailable, writer_link
from postroom.store.writer_link import RemoteEnqueue
from support.writer_process import running_writer

from .factories import make_message
from .test_commit_deadline import writer_stuck


def enqueue_once(store: Store, path: Path, message: NewMessage) -> None:
    """One enqueue over a new link, from a loop of its own."""
    remote = RemoteEnqueue(store, path)

    async def main() -> None:
        try:
            await remote.enqueue(message)
        finally:
            remote.disconnect()

    asyncio.run(main())


def test_two_processes_share_transactions_and_each_hears_its_own(
        store_url: str, tmp_path: Path) -> None:
    """Two ingress links (as two processes have) whose requests meet in the same commits, one
    of them with a caller that fails: every caller gets its own outcome, none a neighbour's."""
    store = Store.open(store_url)
    path = tmp_path / "writer.sock"
    try:
        account = store.create_account("acme", sender_domains=["acme.test"])
        taken = make_message(account.id, "first@example.org")
        store.enqueue_many([taken])
        links = [RemoteEnqueue(store, path) for _ in range(2)]
        messages = [make_message(account.id, f"r{i}@example.org") for i in range(60)]
        duplicate = make_message(account.id, "again@example.org", id=taken.id)
        with running_writer(store_url, path) as writer:

            async def main() -> tuple[list[BaseException | None], int,
                                      list[BaseException | None]]:
                for link in links:
                    await link.connect()
                try:
                    first = await asyncio.gather(
                        *(links[i % 2].enqueue(m) for i, m in enumerate(messages[:50])),
                        return_exceptions=True)
                    commits = writer.commits
                    calls = [links[i % 2].enqueue(m) for i, m in enumerate(messages[50:])]
                    calls.insert(5, links[1].enqueue(duplicate))
                    return first, commits, await asyncio.gather(*calls, return_exceptions=True)
                finally:
                    for link in links:
                        link.disconnect()

            first, commits, second = asyncio.run(main())
        assert first == [None] * 50
        assert 1 <= commits < 50, commits  # the two links' requests shared transactions
        assert isinstance(second.pop(5), InvalidData)
        assert second == [None] * 10
        assert all(store.get_message(m.id) is not None for m in messages)
        assert len(writer.clients) == 0 and not path.exists(), "the writer outlived its stop"
    finally:
        store.close()


def test_a_stranger_on_the_socket_is_dropped_and_the_others_go_on(
        store: Store, account: Account, store_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that are no request end that connection only; a batch larger than one commit
    takes is refused before it is sent, and the link stays usable."""
    path = tmp_path / "writer.sock"
    good = make_message(account.id, "good@example.org")
    with running_writer(store_url, path) as writer:
        remote = RemoteEnqueue(store, path)

        async def main() -> None:
            try:
                await remote.connect()
                reader, stranger = await asyncio.open_unix_connection(str(path))
                stranger.write(b"\x00\x00\x00\x03\xff\xff\xff")
                await stranger.drain()
                assert await asyncio.wait_for(reader.read(), 5) == b"", "not dropped"
                monkeypatch.setattr(writer_link, "MAX_FRAME", 1 << 20)
                huge = make_message(account.id, raw=b"x" * (1 << 20))
                with pytest.raises(InvalidData, match="more than one commit takes"):
                    await remote.enqueue_batch([huge, good])
                await remote.enqueue(good)
                stranger.close()
            finally:
                remote.disconnect()

        asyncio.run(main())
        assert writer.commits == 1
    assert store.get_message(good.id) is not None


def test_a_socket_path_longer_than_unix_sockets_take(store: Store, account: Account,
                                                     store_url: str, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d" * 40] * 4)
    deep.mkdir(parents=True)
    path = deep / "writer.sock"
    assert len(str(path)) > 108
    message = make_message(account.id)
    with running_writer(store_url, path):
        enqueue_once(store, path, message)
    assert store.get_message(message.id) is not None


def test_a_batch_lands_whole_and_a_bad_message_fails_alone(
        store: Store, account: Account, store_url: str, tmp_path: Path) -> None:
    """A duplicate id is one caller's problem: its neighbours in the transaction commit, and a
    two-message batch commits as a whole."""
    path = tmp_path / "writer.sock"
    taken = make_message(account.id, "first@example.org")
    store.enqueue_many([taken])
    duplicate = make_message(account.id, "again@example.org", id=taken.id)
    batch = [make_message(account.id, f"b{i}@example.org") for i in range(2)]
    single = make_message(account.id, "single@example.org")
    with running_writer(store_url, path):
        remote = RemoteEnqueue(store, path)

        async def main() -> list[BaseException | None]:
            try:
                return await asyncio.gather(
                    remote.enqueue(duplicate), remote.enqueue_batch(batch),
                    remote.enqueue(single), return_exceptions=True)
            finally:
                remote.disconnect()

        bad, whole, good = asyncio.run(main())
    assert isinstance(bad, InvalidData), bad
    assert whole is None and good is None
    assert all(store.get_message(m.id) is not None for m in [*batch, single])
    assert [r.address for r in store.get_message(taken.id).recipients] == ["first@example.org"]


def test_a_request_past_its_deadline_is_dropped(store_url: str, tmp_path: Path) -> None:
    """The first request is inside the stuck transaction and lands late; the second waits in
    the socket past its deadline and is dropped, so retries through a stall pile up nothing."""
    store = Store.open(store_url, commit_timeout=0.5)
    path = tmp_path / "writer.sock"
    try:
        account = store.create_account("acme", sender_domains=["acme.test"])
        inside, waiting = (make_message(account.id, "r@example.org") for _ in range(2))
        with running_writer(store_url, path):
            remote = RemoteEnqueue(store, path)

            async def main() -> list[BaseException | None]:
                first = asyncio.create_task(remote.enqueue(inside))
                await asyncio.sleep(0.2)  # the writer has taken it and waits for the lock
                return await asyncio.gather(first, remote.enqueue(waiting),
                                            return_exceptions=True)

            with writer_stuck(store_url):
                started = time.monotonic()
                results = asyncio.run(main())
                assert time.monotonic() - started < 5.0
            assert all(isinstance(r, StoreUnavailable) for r in results), results
            end = time.monotonic() + 20
            while store.get_message(inside.id) is None and time.monotonic() < end:
                time.sleep(0.05)
        assert store.get_message(inside.id) is not None, "the stuck commit never landed"
        assert store.get_message(waiting.id) is None, "a request past its deadline was written"
    finally:
        store.close()


def test_a_lost_writer_fails_its_callers_and_a_new_one_is_found(tmp_path: Path) -> None:
    """The writer goes away with a request in flight (it takes the request, then its connection
    drops): the caller hears StoreUnavailable at once (its client will retry), and the next
    enqueue connects to the writer that replaced it."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = Store.open(url)
    path = tmp_path / "writer.sock"
    try:
        account = store.create_account("acme", sender_domains=["acme.test"])
        remote = RemoteEnqueue(store, path)

        async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(65536)
            writer.transport.abort()

        async def lose() -> tuple[BaseException | None, float]:
            server = await asyncio.start_unix_server(dies, path=str(path))
            try:
                started = time.monotonic()
                lost = (await asyncio.gather(remote.enqueue(make_message(account.id)),
                                             return_exceptions=True))[0]
                return lost, time.monotonic() - started
            finally:
                server.close()
                await server.wait_closed()

        lost, waited = asyncio.run(lose())
        assert isinstance(lost, StoreUnavailable) and "lost" in str(lost), lost
        assert waited < 5.0
        later = make_message(account.id)
        with running_writer(url, path):

            async def again() -> None:
                await remote.enqueue(later)
                remote.disconnect()

            asyncio.run(again())
        assert store.get_message(later.id) is not None
    finally:
        store.close()


def test_an_old_writer_leaves_a_new_one_s_socket_alone(store: Store, account: Account,
                                                       store_url: str, tmp_path: Path) -> None:
    """After a crash the new server's writer binds the path while the orphaned old one is
    still finishing; when the old one ends, the new one must stay reachable."""
    path = tmp_path / "writer.sock"
    message = make_message(account.id)
    with running_writer(store_url, path) as old, running_writer(store_url, path):
        old.stop()
        end = time.monotonic() + 5
        while old.listener is not None and time.monotonic() < end:
            time.sleep(0.01)
        assert old.listener is None
        assert path.exists(), "the old writer removed the new one's socket"
        enqueue_once(store, path, message)
    assert store.get_message(message.id) is not None
