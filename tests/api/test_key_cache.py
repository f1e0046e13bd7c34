"""The HTTP API remembers found keys for a moment (like the SMTP side's AccountCache), never
unknown ones, and forgets them when this process revokes a key."""

from __future__ import annotations

import asyncio
from typing import Any

from postroom.api.auth import KeyCache


class CountingStore:
    def __init__(self) -> None:
        self.calls = 0
        self.keys: dict[str, Any] = {"h1": ("key1", "account1")}

    def find_api_key(self, key_hash: str) -> Any:
        self.calls += 1
        return self.keys.get(key_hash)


def lookups(ttl: float, hashes: list[str], change: dict[str, Any] | None = None,
            clear: bool = False) -> tuple[list[Any], int]:
    """Look `hashes` up twice (the store changed by `change` in between); what each lookup
    found and how often the store was asked."""
    store = CountingStore()
    cache = KeyCache(store, ttl=ttl)

    async def run() -> list[Any]:
        found = [await cache.find(h) for h in hashes]
        store.keys.update(change or {})
        if clear:
            cache.clear()
        return found + [await cache.find(h) for h in hashes]

    return asyncio.run(run()), store.calls


def test_found_keys_are_remembered_within_ttl() -> None:
    found, calls = lookups(60, ["h1"], {"h1": None})
    assert found == [("key1", "account1")] * 2 and calls == 1


def test_clear_forgets_them_at_once() -> None:  # e.g. a key revoked through the admin API
    found, calls = lookups(60, ["h1"], {"h1": None}, clear=True)
    assert found == [("key1", "account1"), None] and calls == 2


def test_expired_entries_are_looked_up_again() -> None:
    found, calls = lookups(0, ["h1"], {"h1": ("key1", "changed")})
    assert found == [("key1", "account1"), ("key1", "changed")] and calls == 2


def test_unknown_keys_always_ask_the_store() -> None:
    found, calls = lookups(60, ["nope", "nope"])
    assert found == [None] * 4 and calls == 4
