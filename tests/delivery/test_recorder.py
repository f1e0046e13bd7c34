"""The outcome recorder: concurrent domains' outcomes merge into few transactions, and one
request's failure stays its own (a real SQLite store)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from postroom.delivery.recorder import OutcomeRecorder
from postroom.model import RecipientStatus
from postroom.store import Store
from postroom.store.outbound import Finish, FollowUps
from store.factories import make_message
from support.databases import sqlite_url


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(sqlite_url(tmp_path))
    yield opened  # type: ignore[misc]
    opened.close()


def _claimed(store: Store, n: int) -> list[int]:
    account = store.create_account("acme", sender_domains=["acme.test"])
    store.enqueue_many([make_message(account.id, f"u{i}@d{i}.example") for i in range(n)])
    claims = store.claim_due("w1", now=datetime.now(UTC), limit=n, lease_seconds=60)
    return [c.recipient_id for c in claims]


def _delivered(rid: int) -> Finish:
    return Finish(rid, RecipientStatus.DELIVERED, "250 2.0.0 Ok", 1, remote_host="mx.test")


def test_concurrent_requests_share_transactions_and_all_are_recorded(store: Store) -> None:
    ids = _claimed(store, 40)

    async def run() -> list[set[int]]:
        recorder = OutcomeRecorder(store)
        results = await asyncio.gather(*(recorder.record("w1", [_delivered(r)]) for r in ids))
        assert recorder.transactions < len(ids) / 2  # merged, not one write per request
        return results

    results = asyncio.run(run())
    assert results == [{r} for r in ids]  # each caller hears about its own recipients only
    statuses = {store.get_message(m.id).recipients[0].status  # type: ignore[union-attr]
                for m in store.list_messages(limit=100)}
    assert statuses == {RecipientStatus.DELIVERED}


def test_a_failing_follow_up_fails_only_its_own_request(store: Store) -> None:
    ids = _claimed(store, 6)

    def broken(_: set[int]) -> FollowUps:
        raise RuntimeError("cannot build the DSN")

    async def run() -> list[object]:
        recorder = OutcomeRecorder(store)
        calls = [recorder.record("w1", [_delivered(r)], broken if r == ids[2] else None)
                 for r in ids]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(run())
    assert isinstance(results[2], RuntimeError)
    assert [r for i, r in enumerate(results) if i != 2] == [{r} for r in ids if r != ids[2]]
    pending = [m for m in store.list_messages(limit=100)
               if store.get_message(m.id).recipients[0].status  # type: ignore[union-attr]
               != RecipientStatus.DELIVERED]
    assert len(pending) == 1  # the failed request's transaction was rolled back


def test_an_outcome_for_a_lost_lease_is_not_reported_as_recorded(store: Store) -> None:
    ids = _claimed(store, 2)

    async def run() -> tuple[set[int], set[int]]:
        recorder = OutcomeRecorder(store)
        return await asyncio.gather(recorder.record("w1", [_delivered(ids[0])]),
                                    recorder.record("someone-else", [_delivered(ids[1])]))

    mine, theirs = asyncio.run(run())
    assert mine == {ids[0]}
    assert theirs == set()
