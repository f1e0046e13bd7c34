"""Trusted-network lookups: remembered per client IP, forgotten at each reload of the accounts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from postroom.model import Account
from postroom.submission import checks
from postroom.submission.service import AccountCache


def account(name: str, *networks: str) -> Account:
    return Account(id=name, name=name, sender_domains=("example.com",), sender_addresses=(),
                   bounce_address=None, daily_limit=None, allow_ips=(),
                   trusted_networks=networks, created_at=datetime.now(UTC))


class Store:
    def __init__(self, accounts: list[Account]) -> None:
        self.accounts, self.loads = accounts, 0

    def list_accounts(self) -> list[Account]:
        self.loads += 1
        return list(self.accounts)


def test_lookup_per_ip_until_reload() -> None:
    store = Store([account("a", "10.0.0.0/8"), account("b", "192.0.2.0/24", "2001:db8::/32")])
    cache = AccountCache(store, ttl=3600)

    async def run() -> None:
        assert (await cache.trusted_account("10.1.2.3")).id == "a"  # type: ignore[union-attr]
        assert (await cache.trusted_account("2001:db8::1")).id == "b"  # type: ignore[union-attr]
        assert await cache.trusted_account("198.51.100.1") is None
        assert await cache.trusted_account("not an ip") is None
        store.accounts = [account("c", "198.51.100.0/24")]
        assert (await cache.trusted_account("10.1.2.3")).id == "a"  # type: ignore[union-attr]
        cache.ttl = 0  # the next call reloads, and forgets every remembered answer
        await asyncio.sleep(0.001)
        assert await cache.trusted_account("10.1.2.3") is None
        assert (await cache.trusted_account("198.51.100.7")).id == "c"  # type: ignore[union-attr]

    asyncio.run(run())
    assert store.loads >= 2


def test_bad_networks_are_skipped() -> None:
    acc = account("a", "not-a-network", "127.0.0.0/8")
    assert checks.trusted_from(acc, "127.0.0.1")
    assert not checks.trusted_from(acc, "10.0.0.1")
    assert checks.ip_allowed(account("b"), "10.0.0.1") is None
