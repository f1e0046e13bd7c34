"""Queries behind the HTTP API: campaign/tag filters that page, and idempotency-key races."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest

from postroom.model import Account
from postroom.store import Store, http_data

from .factories import make_message


def _ids(store: Store, account: Account, **filters: object) -> list[str]:
    base: dict[str, object] = dict(status=None, recipient=None, since=None, until=None,
                                   campaign=None, tag=None, before=None)
    return store.find_message_ids(account.id, **{**base, **filters})  # type: ignore[arg-type]


def test_campaign_filter_reaches_matches_older_than_the_first_window(
    store: Store, account: Account
) -> None:
    old = [make_message(account.id, options={"campaign_id": "c1", "tags": ["t"]})
           for _ in range(3)]
    store.enqueue_many(old)
    store.enqueue_many([make_message(account.id) for _ in range(1100)])
    newest_first = sorted((m.id for m in old), reverse=True)
    assert _ids(store, account, campaign="c1", limit=2) == newest_first[:2]
    assert _ids(store, account, tag="t", limit=2, before=newest_first[1]) == newest_first[2:]
    assert _ids(store, account, campaign="c1", limit=10) == newest_first


def test_campaign_filter_pages_through_many_windows(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_data, "_OPTIONS_WINDOW", 5)
    wanted: list[str] = []
    for i in range(60):  # one match in every 12 messages: many windows per page
        m = make_message(account.id, options={"campaign_name": "spring"} if i % 12 == 0 else {})
        store.enqueue_many([m])
        if i % 12 == 0:
            wanted.append(m.id)
    wanted.sort(reverse=True)
    pages, cursor = [], None
    while True:
        page = _ids(store, account, campaign="spring", limit=2, before=cursor)
        pages.append(page)
        if len(page) < 2:  # the route's rule: a full page gets a next_cursor
            break
        cursor = page[-1]
    assert [i for p in pages for i in p] == wanted
    assert _ids(store, account, campaign="autumn", limit=3) == []


def _race(store: Store, account: Account, key: str, *, threads: int) -> list[str]:
    barrier = threading.Barrier(threads)
    results: list[str] = []

    def claim() -> None:
        barrier.wait()
        try:
            got = store.idempotency_claim(account.id, key, "h", ttl=timedelta(hours=24),
                                          stale=timedelta(minutes=5))
            results.append(got[0])
        except Exception as exc:  # what a loser used to get: AlreadyExists on PostgreSQL
            results.append(type(exc).__name__)

    running = [threading.Thread(target=claim) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return results


def test_concurrent_claims_of_one_idempotency_key(store: Store, account: Account) -> None:
    """Exactly one request wins a key; the others are told it is busy, on both backends."""
    seen: Counter[str] = Counter()
    for k in range(10):
        results = _race(store, account, f"key{k}", threads=6)
        assert sorted(results) == ["busy"] * 5 + ["new"], results
        seen.update(results)
    assert seen == {"new": 10, "busy": 50}


def test_idempotency_answers_and_takeover_of_stale_keys(store: Store, account: Account) -> None:
    day, five = timedelta(hours=24), timedelta(minutes=5)
    claim = store.idempotency_claim
    assert claim(account.id, "k", "h", ttl=day, stale=five) == ("new", 0, None)
    assert claim(account.id, "k", "h", ttl=day, stale=five) == ("busy", 0, None)
    assert claim(account.id, "k", "other", ttl=day, stale=five) == ("mismatch", 0, None)
    # abandoned (still in progress after `stale`): the next request takes it over
    assert claim(account.id, "k", "h2", ttl=day, stale=timedelta(0)) == ("new", 0, None)
    assert claim(account.id, "k", "h", ttl=day, stale=five) == ("mismatch", 0, None)
    store.idempotency_finish(account.id, "k", 202, {"id": "m1"})
    assert claim(account.id, "k", "h2", ttl=day, stale=five) == ("done", 202, {"id": "m1"})
    # expired: a new request with the key starts over
    assert claim(account.id, "k", "h3", ttl=timedelta(0), stale=five) == ("new", 0, None)
    store.idempotency_release(account.id, "k")
    assert claim(account.id, "k", "h4", ttl=day, stale=five) == ("new", 0, None)
