"""Connection pool accounting: limits in total, per key and per connection; reuse; eviction."""

from __future__ import annotations

import asyncio

import pytest

from postroom.delivery.pool import Pool, Slots


class FakeSession:
    def __init__(self, name: str) -> None:
        self.name, self.usable, self.transactions, self.closed = name, True, 0, False

    async def close(self) -> None:
        self.closed, self.usable = True, False


def opener(log: list[FakeSession], key: str):
    async def open_() -> FakeSession:
        session = FakeSession(f"{key}#{len(log)}")
        log.append(session)
        return session
    return open_


def test_slots_limits() -> None:
    slots = Slots(max_total=3, max_per_key=2)
    slots.take("a")
    slots.take("a")
    assert slots.key_full("a") and not slots.may_open("a") and slots.may_open("b")
    slots.take("b")
    assert not slots.may_open("c")  # total reached
    slots.give_back("a")
    assert slots.may_open("a") and slots.total == 2 and slots.opened["a"] == 2
    with pytest.raises(RuntimeError):
        slots.give_back("zzz")


def test_reuse_until_the_per_connection_message_limit() -> None:
    asyncio.run(_reuse_until_the_per_connection_message_limit())


async def _reuse_until_the_per_connection_message_limit() -> None:
    pool, log = Pool(max_total=5, max_per_key=2, max_messages=3), []
    for _ in range(7):
        s = await pool.acquire("k", opener(log, "k"))
        s.transactions += 1
        await pool.release("k", s)
    await asyncio.sleep(0)
    assert len(log) == 3  # 3 + 3 + 1 messages
    assert [s.closed for s in log] == [True, True, False]
    assert pool.slots.total == 1 and pool.idle_count == 1


def test_per_key_limit_waits_for_a_release() -> None:
    asyncio.run(_per_key_limit_waits_for_a_release())


async def _per_key_limit_waits_for_a_release() -> None:
    pool, log = Pool(max_total=5, max_per_key=1, max_messages=100), []
    first = await pool.acquire("k", opener(log, "k"))
    waiter = asyncio.create_task(pool.acquire("k", opener(log, "k")))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await pool.release("k", first)
    assert await asyncio.wait_for(waiter, 1) is first and len(log) == 1


def test_total_limit_evicts_an_idle_session_of_another_key() -> None:
    asyncio.run(_total_limit_evicts_an_idle_session_of_another_key())


async def _total_limit_evicts_an_idle_session_of_another_key() -> None:
    pool, log = Pool(max_total=2, max_per_key=2, max_messages=100), []
    a = await pool.acquire("a", opener(log, "a"))
    b = await pool.acquire("b", opener(log, "b"))
    await pool.release("a", a)
    c = await asyncio.wait_for(pool.acquire("c", opener(log, "c")), 1)
    await asyncio.sleep(0)
    assert a.closed and not b.closed and c.name.startswith("c")
    assert pool.slots.total == 2 and dict(pool.slots.open) == {"b": 1, "c": 1}


def test_failed_open_gives_the_slot_back() -> None:
    asyncio.run(_failed_open_gives_the_slot_back())


async def _failed_open_gives_the_slot_back() -> None:
    pool = Pool(max_total=1, max_per_key=1, max_messages=100)

    async def broken() -> FakeSession:
        raise OSError("refused")

    with pytest.raises(OSError):
        await pool.acquire("k", broken)
    assert pool.slots.total == 0


def test_broken_and_idle_sessions_are_closed() -> None:
    asyncio.run(_broken_and_idle_sessions_are_closed())


async def _broken_and_idle_sessions_are_closed() -> None:
    clock = [0.0]
    pool, log = Pool(max_total=5, max_per_key=5, max_messages=100, idle_seconds=5,
                     clock=lambda: clock[0]), []
    s1 = await pool.acquire("k", opener(log, "k"))
    s2 = await pool.acquire("k", opener(log, "k"))
    s2.usable = False
    await pool.release("k", s2)  # broken: closed at once
    await pool.release("k", s1)
    assert pool.slots.total == 1
    clock[0] = 4.0
    assert await pool.reap() == 0
    clock[0] = 6.0
    assert await pool.reap() == 1
    await pool.close()
    assert pool.slots.total == 0 and s1.closed
