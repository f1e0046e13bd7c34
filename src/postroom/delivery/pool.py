"""Outbound connection reuse under three limits: in total, per destination, per connection.

`Slots` is the pure accounting (how many connections are open per pool key, and whether one
more may open); `Pool` adds asyncio around it: `acquire(key, opener)` hands out an idle session
for that key when there is one, opens a new one when the limits allow, evicts an idle session of
another key when only the total limit is in the way, and otherwise waits for a release.
`release` puts a healthy session back to idle unless it has carried
`max_messages_per_connection` messages; idle sessions are closed after `idle_seconds` by
`reap()`. A session is only ever used by one task at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Pool", "PooledSession", "Slots"]


class PooledSession(Protocol):
    @property
    def usable(self) -> bool: ...

    transactions: int

    async def close(self) -> None: ...


@dataclass
class Slots:
    """Open-connection counts per key, against a total and a per-key limit."""

    max_total: int
    max_per_key: int
    open: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: int = 0
    #: connections ever opened, per key (tests read it: "N messages over few connections")
    opened: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def key_full(self, key: str) -> bool:
        return self.open[key] >= self.max_per_key

    def may_open(self, key: str) -> bool:
        return self.total < self.max_total and not self.key_full(key)

    def take(self, key: str) -> None:
        if not self.may_open(key):
            raise RuntimeError(f"no free connection slot for {key}")
        self.open[key] += 1
        self.opened[key] += 1
        self.total += 1

    def give_back(self, key: str) -> None:
        if self.open[key] <= 0:
            raise RuntimeError(f"no open connection for {key}")
        self.open[key] -= 1
        self.total -= 1
        if not self.open[key]:
            del self.open[key]


class Pool:
    def __init__(
        self,
        *,
        max_total: int,
        max_per_key: int,
        max_messages: int,
        idle_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slots = Slots(max_total, max_per_key)
        self.max_messages = max_messages
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._idle: dict[str, deque[tuple[Any, float]]] = defaultdict(deque)
        self._waiters: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def idle_count(self) -> int:
        return sum(len(q) for q in self._idle.values())

    async def acquire(self, key: str, opener: Callable[[], Awaitable[Any]]) -> Any:
        """An idle session for `key`, or a new one from `opener()` once a slot is free.
        Raises what `opener` raises (the slot is given back first)."""
        while True:
            session = self._take_idle(key)
            if session is not None:
                return session
            if self.slots.may_open(key):
                break
            if not self.slots.key_full(key) and self._evict_other(key):
                break
            await self._wait(key)
        self.slots.take(key)
        try:
            return await opener()
        except BaseException:
            self._give_back(key)
            raise

    async def release(self, key: str, session: Any, *, reuse: bool = True) -> None:
        """Return a session: back to idle when healthy and not worn out, else closed."""
        if reuse and session.usable and session.transactions < self.max_messages:
            self._idle[key].append((session, self._clock()))
            self._wake(key)
            return
        self._close_later(session)
        self._give_back(key)

    async def reap(self) -> int:
        """Close sessions idle longer than `idle_seconds` (and dead ones); returns how many."""
        cutoff = self._clock() - self.idle_seconds
        closed = 0
        for key in list(self._idle):
            queue = self._idle[key]
            keep = deque((s, t) for s, t in queue if t > cutoff and s.usable)
            for session, t in queue:
                if t <= cutoff or not session.usable:
                    self._close_later(session)
                    self.slots.give_back(key)
                    closed += 1
            self._idle[key] = keep
            if not keep:
                del self._idle[key]
        if closed:
            self._wake_all()
        return closed

    async def close(self) -> None:
        """Close every idle session and wait (briefly) for the closes to finish."""
        self.idle_seconds = -1.0
        await self.reap()
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=2.0)

    # --- internals (plain code on the event loop: nothing in them awaits) -------------------
    def _take_idle(self, key: str) -> Any:
        queue = self._idle.get(key)
        while queue:
            session, _ = queue.pop()  # most recently used first: the warmest connection
            if session.usable:
                return session
            self._close_later(session)
            self.slots.give_back(key)
        return None

    def _evict_other(self, key: str) -> bool:
        """Close the longest-idle session of another key to make room under the total."""
        oldest: tuple[float, str] | None = None
        for other, queue in self._idle.items():
            if other != key and queue and (oldest is None or queue[0][1] < oldest[0]):
                oldest = (queue[0][1], other)
        if oldest is None:
            return False
        session, _ = self._idle[oldest[1]].popleft()
        self._close_later(session)
        self.slots.give_back(oldest[1])
        return True

    def _give_back(self, key: str) -> None:
        self.slots.give_back(key)
        self._wake(key)

    # --- waiting: one future per waiter, woken one at a time ---------------------------------
    async def _wait(self, key: str) -> None:
        """Wait for a `_wake` of `key`. Why not a Condition with notify_all: a batch over 100
        domains routed to one host has hundreds of lanes waiting for that host's few
        connections, and waking all of them on every release cost quadratic time."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters[key]
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake(key)  # woken but will not act on it: pass the wake on
            raise
        finally:
            if not waiter.done():
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            if not queue and self._waiters.get(key) is queue:
                del self._waiters[key]

    def _wake(self, key: str) -> None:
        """A session of `key` went idle or a slot was freed: wake the first waiter for `key`;
        with none, every other waiter (a free slot or an evictable idle session may serve any
        key, and a woken waiter that cannot use it simply waits again)."""
        queue = self._waiters.get(key)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._wake_all()

    def _wake_all(self) -> None:
        for queue in list(self._waiters.values()):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    def _close_later(self, session: Any) -> None:
        task = asyncio.get_running_loop().create_task(_quietly_close(session))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _quietly_close(session: Any) -> None:
    with contextlib.suppress(Exception):
        await session.close()
