"""Claim pacing: after a partial batch the next claim waits, a full batch is followed at once."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from postroom.config.settings import DeliverySettings, Settings
from postroom.delivery.service import DeliveryService


class CountingStore:
    """Answers claim_due with the next of `answers` (how many claims) and notes when."""

    def __init__(self, answers: list[int]) -> None:
        self.answers, self.calls = list(answers), []

    def claim_due(self, owner: str, *, now: Any, limit: int, lease_seconds: float) -> list[int]:
        self.calls.append(time.monotonic())
        return list(range(min(self.answers.pop(0), limit)))


def service(store: CountingStore, interval: float, batch: int = 3) -> DeliveryService:
    delivery = DeliverySettings(nameservers=["127.0.0.1:9"], batch_size=batch,
                                claim_interval_seconds=interval)
    return DeliveryService(Settings(delivery=delivery), store)


def gaps(calls: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(calls)]


def in_turn(svc: DeliveryService, count: int) -> list[int]:
    """`count` claims by one worker, one after the other: how many recipients each found."""
    async def claims() -> list[int]:
        return [len(await svc._claim("w0")) for _ in range(count)]

    return asyncio.run(claims())


def test_a_partial_batch_spaces_the_next_claim() -> None:
    store = CountingStore([1, 0, 2])
    assert in_turn(service(store, 0.2), 3) == [1, 0, 2]
    assert all(gap >= 0.19 for gap in gaps(store.calls)), gaps(store.calls)


def test_a_full_batch_is_followed_at_once() -> None:
    store = CountingStore([3, 3, 1])
    assert in_turn(service(store, 0.5), 3) == [3, 3, 1]
    assert all(gap < 0.25 for gap in gaps(store.calls)), gaps(store.calls)


def test_workers_of_one_process_share_the_pace() -> None:
    store = CountingStore([1, 1, 1])
    svc = service(store, 0.15)

    async def together() -> None:
        await asyncio.gather(*(svc._claim(f"w{i}") for i in range(3)))

    asyncio.run(together())
    assert len(store.calls) == 3
    assert all(gap >= 0.14 for gap in gaps(store.calls)), gaps(store.calls)


def test_zero_interval_never_waits() -> None:
    store = CountingStore([1] * 5)
    in_turn(service(store, 0.0), 5)
    assert store.calls[-1] - store.calls[0] < 0.25


def test_a_stop_ends_the_wait_and_claims_nothing() -> None:
    store = CountingStore([1, 1])
    svc = service(store, 5.0)

    async def claim_then_stop() -> list[int]:
        await svc._claim("w0")
        later = asyncio.create_task(svc._claim("w1"))
        await asyncio.sleep(0.05)
        await svc.stop()
        return await asyncio.wait_for(later, 1.0)

    assert asyncio.run(claim_then_stop()) == []
    assert len(store.calls) == 1
