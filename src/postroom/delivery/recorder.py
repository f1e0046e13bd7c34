"""Group commit for delivery outcomes: many domains' results, one store transaction.

Why: a batch of claims spreads over many destination domains, and each domain records its
outcomes as soon as it is done (so a slow domain never holds the others' results back). With one
transaction per domain, a batch of 200 recipients over 100 domains cost 100 write transactions,
each an fsync and a turn at SQLite's single write lock, which the ingress writer needs too: in a
delivery-only profile 70 % of the delivery process's time was spent waiting in BEGIN and COMMIT.

The recorder keeps the "record as soon as done" promise and merges whatever arrives while a
transaction is running into the next one, per lease owner (`Store.record_outcomes` guards each
outcome by its owner). When idle, a lone request is written at once: no timer, no added latency.
Isolation as in the ingress group commit (store/commit.py): when a merged transaction fails, each
request is retried on its own, so one request's failure (say, a DSN that cannot be built) is
reported to that request only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from postroom.store.outbound import Finish, FollowUps

log = logging.getLogger("postroom.delivery")

__all__ = ["OutcomeRecorder"]

FollowUpsFn = Callable[[set[int]], FollowUps]


@dataclass(slots=True)
class _Request:
    items: Sequence[Finish]
    follow_ups: FollowUpsFn | None
    done: asyncio.Future[set[int]]


class OutcomeRecorder:
    """`await record(owner, items, follow_ups)` behaves like `Store.record_outcomes`."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._pending: dict[str, list[_Request]] = {}
        self._drainer: asyncio.Task[None] | None = None
        self.transactions = 0  # for tests and logs: how many store calls were made

    async def record(self, owner: str, items: Sequence[Finish],
                     follow_ups: FollowUpsFn | None = None) -> set[int]:
        if not items:
            return set()
        done: asyncio.Future[set[int]] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(owner, []).append(_Request(items, follow_ups, done))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="delivery-outcomes")
        return await asyncio.shield(done)  # a cancelled caller must not cancel the others' write

    async def drained(self, timeout: float) -> None:
        """Wait, at most `timeout` seconds, until every write asked for so far is done."""
        task = self._drainer
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=timeout)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            for owner, requests in batch.items():
                await self._write(owner, requests)

    async def _write(self, owner: str, requests: list[_Request]) -> None:
        try:
            recorded = await self._call(owner, requests)
        except Exception as exc:
            if len(requests) == 1:
                _settle(requests[0], exc)
                return
            log.warning("merged outcome write failed (%s); writing each request alone", exc)
            for request in requests:
                try:
                    _settle(request, await self._call(owner, [request]))
                except Exception as alone:
                    _settle(request, alone)
            return
        for request in requests:
            _settle(request, recorded)

    async def _call(self, owner: str, requests: list[_Request]) -> set[int]:
        items = [item for r in requests for item in r.items]
        with_follow_ups = [r for r in requests if r.follow_ups is not None]

        def follow_ups(recorded: set[int]) -> FollowUps:
            suppressions: list[tuple[str, str, str]] = []
            messages: list[Any] = []
            for r in with_follow_ups:
                mine = recorded & {i.recipient_id for i in r.items}
                if mine:
                    extra = r.follow_ups(mine)  # type: ignore[misc]
                    suppressions += extra.suppressions
                    messages += extra.messages
            return FollowUps(suppressions, messages)

        self.transactions += 1
        return await asyncio.to_thread(self.store.record_outcomes, owner, items,
                                       follow_ups if with_follow_ups else None)


def _settle(request: _Request, outcome: set[int] | BaseException) -> None:
    if request.done.done():
        return
    if isinstance(outcome, BaseException):
        request.done.set_exception(outcome)
    else:
        request.done.set_result({i.recipient_id for i in request.items} & outcome)
