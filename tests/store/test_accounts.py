"""Accounts, API keys, suppressions and usage round trips."""

from __future__ import annotations

import pytest

from postroom.model import Account
from postroom.store import AlreadyExists, NotFound, Store


def test_account_round_trip(store: Store) -> None:
    created = store.create_account(
        "acme",
        sender_domains=["acme.test", "mail.acme.test"],
        sender_addresses=("ceo@other.test",),
        bounce_address="bounces@acme.test",
        daily_limit=1000,
        allow_ips=["10.0.0.0/8"],
        trusted_networks=("127.0.0.1/32",),
    )
    assert len(created.id) == 26
    assert created.created_at is not None and created.created_at.tzinfo is not None
    by_name, by_id = store.get_account("acme"), store.get_account(created.id)
    assert by_name == by_id == created
    assert by_name.sender_domains == ("acme.test", "mail.acme.test")
    assert store.get_account("nobody") is None

    store.create_account("beta")
    assert [a.name for a in store.list_accounts()] == ["acme", "beta"]
    assert store.count_accounts() == 2
    beta = store.get_account("beta")
    assert beta is not None
    assert (beta.sender_domains, beta.allow_ips, beta.daily_limit) == ((), (), None)


def test_duplicate_account_name(store: Store) -> None:
    store.create_account("acme")
    with pytest.raises(AlreadyExists):
        store.create_account("acme")
    assert store.count_accounts() == 1


def test_api_keys(store: Store, account: Account) -> None:
    key = store.create_api_key(account.id, key_hash="h1", prefix="pr_aaaa")
    assert key.scopes == ("send", "read") and key.revoked_at is None
    other = store.create_api_key(account.id, key_hash="h2", prefix="pr_bbbb", scopes=["read"])

    found = store.find_api_key("h1")
    assert found is not None
    assert found[0] == key and found[1] == account
    assert store.find_api_key("nope") is None
    assert [k.id for k in store.list_api_keys()] == [key.id, other.id]
    assert [k.id for k in store.list_api_keys(account.id)] == [key.id, other.id]
    assert store.list_api_keys("someone-else") == []

    with pytest.raises(AlreadyExists):
        store.create_api_key(account.id, key_hash="h1", prefix="pr_cccc")
    with pytest.raises(NotFound):
        store.create_api_key("no-such-account", key_hash="h3", prefix="pr_dddd")

    assert store.revoke_api_key("pr_aaaa") is True  # by prefix
    assert store.revoke_api_key("pr_aaaa") is False  # already revoked
    assert store.find_api_key("h1") is None
    assert store.revoke_api_key(other.id) is True  # by id
    assert store.find_api_key("h2") is None
    revoked = {k.id: k.revoked_at for k in store.list_api_keys(account.id)}
    assert all(at is not None and at.tzinfo is not None for at in revoked.values())


def test_ambiguous_prefix_revokes_nothing(store: Store, account: Account) -> None:
    store.create_api_key(account.id, key_hash="h1", prefix="same")
    store.create_api_key(account.id, key_hash="h2", prefix="same")
    with pytest.raises(ValueError, match="2 active keys"):
        store.revoke_api_key("same")
    assert store.find_api_key("h1") is not None and store.find_api_key("h2") is not None


def test_suppressions(store: Store, account: Account) -> None:
    store.add_suppression(account.id, "Bob@Example.COM", "hard bounce")
    store.add_suppression(account.id, "bob@example.com", "complaint")  # idempotent
    store.add_suppression("other-account", "alice@example.com", "manual")

    listed = store.list_suppressions(account.id)
    assert [(s.address, s.reason) for s in listed] == [("bob@example.com", "hard bounce")]
    assert listed[0].created_at is not None

    asked = ["BOB@example.com", "bob@EXAMPLE.com", "alice@example.com", "carol@example.com"]
    assert store.suppressed_among(account.id, asked) == {"BOB@example.com", "bob@EXAMPLE.com"}
    assert store.suppressed_among("other-account", asked) == {"alice@example.com"}
    assert store.suppressed_among(account.id, []) == set()
    many = [f"user{i}@example.com" for i in range(1200)] + ["Bob@example.com"]
    assert store.suppressed_among(account.id, iter(many)) == {"Bob@example.com"}

    assert store.remove_suppression(account.id, "BOB@example.com") is True
    assert store.remove_suppression(account.id, "bob@example.com") is False
    assert store.suppressed_among(account.id, asked) == set()


def test_daily_count_defaults_to_zero(store: Store, account: Account) -> None:
    assert store.daily_count(account.id, "2024-01-01") == 0
