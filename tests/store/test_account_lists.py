"""`Store.change_account_lists`: read, change, write in one transaction, on both backends."""

from __future__ import annotations

import threading

import pytest

from postroom.model import Account
from postroom.store import Store


def test_lists_change_and_read_back(store: Store, account: Account) -> None:
    seen: list[Account] = []

    def change(current: Account) -> dict[str, list[str]]:
        seen.append(current)
        return {"sender_domains": [*current.sender_domains, "two.test"],
                "allow_ips": ["10.0.0.0/8"], "trusted_networks": ["192.168.0.0/24"],
                "sender_addresses": ["ceo@other.test"]}

    changed = store.change_account_lists(account.id, change)
    assert seen == [account]
    assert changed is not None and changed == store.get_account(account.id)
    assert changed.sender_domains == ("acme.test", "two.test")
    assert (changed.allow_ips, changed.trusted_networks) == (("10.0.0.0/8",),
                                                             ("192.168.0.0/24",))
    assert changed.sender_addresses == ("ceo@other.test",)
    assert changed.name == "acme" and changed.created_at == account.created_at


def test_a_refusal_changes_nothing(store: Store, account: Account) -> None:
    def refuse(current: Account) -> dict[str, list[str]]:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        store.change_account_lists(account.id, refuse)
    with pytest.raises(ValueError, match="not an account list"):
        store.change_account_lists(account.id, lambda a: {"name": ["x"]})
    assert store.get_account(account.id) == account
    assert store.change_account_lists(account.id, lambda a: {}) == account


def test_no_such_account(store: Store) -> None:
    assert store.change_account_lists("01nonexistent", lambda a: {"allow_ips": []}) is None


def test_concurrent_edits_keep_each_other(store: Store, account: Account) -> None:
    """Each thread adds its own domains; none of them is lost to another's write."""

    def add(prefix: str) -> None:
        for n in range(8):
            store.change_account_lists(account.id, lambda a, n=n: {
                "sender_domains": [*a.sender_domains, f"{prefix}{n}.test"]})

    threads = [threading.Thread(target=add, args=(p,)) for p in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = store.get_account(account.id)
    assert found is not None and len(found.sender_domains) == 1 + 3 * 8
