"""Bookkeeping for `mta_sts_policies`: what is remembered for a while, and background tasks.

Both are keyed by domain (or domain and policy id), and a delivery process meets many domains,
so both are bounded: `Expiring` forgets its oldest entries beyond `max_entries` (an expired
entry is forgotten when it is next looked at, or as one of the oldest), and `Tasks` holds one
task per key at a time, only while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

log = logging.getLogger("postroom.delivery")

__all__ = ["Expiring", "Tasks"]

K = TypeVar("K", bound=Hashable)


class Expiring(Generic[K]):
    """Keys remembered until a time each, at most `max_entries` of them."""

    def __init__(self, max_entries: int) -> None:
        self._until: OrderedDict[K, float] = OrderedDict()
        self._max = max(1, max_entries)

    def __len__(self) -> int:
        return len(self._until)

    def active(self, key: K, now: float) -> bool:
        """Whether `key` is remembered at `now`."""
        until = self._until.get(key)
        if until is None:
            return False
        if until > now:
            return True
        del self._until[key]
        return False

    def add(self, key: K, until: float) -> None:
        """Remember `key` until `until`; beyond `max_entries` the oldest entry goes (each
        instance remembers for one duration, so the oldest is also the first to expire)."""
        self._until[key] = until
        self._until.move_to_end(key)
        while len(self._until) > self._max:
            self._until.popitem(last=False)

    def discard(self, key: K) -> None:
        self._until.pop(key, None)


class Tasks(Generic[K]):
    """At most one running task per key, referenced until it ends. An exception is logged
    here: everyone who waited for the task may have been cancelled meanwhile."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._tasks: dict[K, asyncio.Task[Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def start(self, key: K, make: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task[Any]:
        """The task running for `key`, or a new one running `make()`."""
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.create_task(make())
            task.add_done_callback(lambda t: self._ended(key, t))
        return task

    def running(self) -> list[asyncio.Task[Any]]:
        return list(self._tasks.values())

    async def cancel(self) -> None:
        """Cancel every running task and wait for them."""
        tasks = self.running()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _ended(self, key: K, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s for %s failed", self._what, key, exc_info=error)
