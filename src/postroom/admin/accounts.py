"""Accounts and API keys: validation in one place for the CLI and the admin API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from postroom.model import Account, ApiKey
from postroom.smtp.commands import is_valid_mailbox
from postroom.submission.checks import validate_networks
from postroom.submission.keys import generate_key

SCOPES = ("send", "read", "admin")
#: The largest daily limit: the column is a 32-bit INTEGER on PostgreSQL (SQLite would take
#: more, and the two backends must accept the same values).
MAX_DAILY_LIMIT = 2**31 - 1


def _check_daily_limit(daily_limit: int | None) -> None:
    if daily_limit is not None and not 1 <= daily_limit <= MAX_DAILY_LIMIT:
        raise ValueError(f"the daily limit must be between 1 and {MAX_DAILY_LIMIT}")


def _domain_ok(domain: str) -> bool:
    return is_valid_mailbox(f"x@{domain}")


def create_account(
    store: Any,
    name: str,
    *,
    sender_domains: list[str],
    sender_addresses: list[str],
    bounce_address: str | None = None,
    daily_limit: int | None = None,
    allow_ips: list[str] | None = None,
    trusted_networks: list[str] | None = None,
) -> Account:
    """Validate then create; raises ValueError with a user-facing message."""
    if not name or len(name) > 100:
        raise ValueError("account name must be 1 to 100 characters")
    domains = [d.strip().lower().rstrip(".") for d in sender_domains]
    for d in domains:
        if not _domain_ok(d):
            raise ValueError(f"not a domain: {d!r}")
    for a in [*sender_addresses, *([bounce_address] if bounce_address else [])]:
        if not is_valid_mailbox(a):
            raise ValueError(f"not an email address: {a!r}")
    if not domains and not sender_addresses:
        raise ValueError("an account needs at least one --sender-domain or --sender-address")
    _check_daily_limit(daily_limit)
    return store.create_account(
        name,
        sender_domains=tuple(domains),
        sender_addresses=tuple(sender_addresses),
        bounce_address=bounce_address,
        daily_limit=daily_limit,
        allow_ips=tuple(validate_networks(allow_ips or [])),
        trusted_networks=tuple(validate_networks(trusted_networks or [])),
    )


def checked_settings(**fields: Any) -> dict[str, Any]:
    """The settings given (None leaves a setting alone), checked and normalised; ValueError
    names the first bad one. `create_account`'s callers check before creating, so a refused
    setting leaves no half-made account behind."""
    changes = {k: v for k, v in fields.items() if v is not None}
    _check_daily_limit(changes.get("daily_limit"))
    url = changes.get("tracking_base_url")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError("the tracking URL must start with http:// or https://")
    if url is not None:
        changes["tracking_base_url"] = url.rstrip("/")
    if changes.get("bounce_address") and not is_valid_mailbox(changes["bounce_address"]):
        raise ValueError(f"not an email address: {changes['bounce_address']!r}")
    return changes


def update_settings(store: Any, account_id: str, **fields: Any) -> Account:
    """Apply the settings given (None leaves a setting alone); returns the account."""
    store.update_account(account_id, checked_settings(**fields))
    found = store.get_account(account_id)
    if found is None:
        raise LookupError(f"no account {account_id!r}")
    return found


#: Each account list, as an operator names it (errors) and as it is normalised for storing.
LISTS = {"sender_domains": "sender domain", "sender_addresses": "sender address",
         "allow_ips": "allowed IP network", "trusted_networks": "trusted network"}


def _normal_entries(field: str, values: Sequence[str]) -> list[str]:
    """Entries checked as `create_account` checks them; ValueError names the first bad one."""
    if field == "sender_domains":
        domains = [d.strip().lower().rstrip(".") for d in values]
        for d in domains:
            if not _domain_ok(d):
                raise ValueError(f"not a domain: {d!r}")
        return domains
    if field == "sender_addresses":
        for a in values:
            if not is_valid_mailbox(a.strip()):
                raise ValueError(f"not an email address: {a!r}")
        return [a.strip() for a in values]
    return validate_networks(list(values))


def change_lists(
    store: Any,
    account_id: str,
    *,
    add: Mapping[str, Sequence[str]],
    remove: Mapping[str, Sequence[str]],
) -> Account:
    """Add, then remove, entries of the account's lists (`LISTS`) in one transaction.

    Raises ValueError (user-facing, nothing changed) for a bad entry, for removing an entry the
    account does not have (a typo should not pass for success), and for removing the last
    sender domain and address (as `create_account` refuses an account without either)."""
    adding = {f: _normal_entries(f, v) for f, v in add.items() if v}
    removing = {f: _normal_entries(f, v) for f, v in remove.items() if v}

    def change(current: Account) -> dict[str, list[str]]:
        lists: dict[str, list[str]] = {}
        for field in {*adding, *removing}:
            entries = list(getattr(current, field))
            for value in adding.get(field, []):
                if value.lower() not in (e.lower() for e in entries):
                    entries.append(value)
            for value in removing.get(field, []):
                kept = [e for e in entries if e.lower() != value.lower()]
                if len(kept) == len(entries):
                    raise ValueError(f"account {current.name} has no {LISTS[field]} {value!r}")
                entries = kept
            lists[field] = entries
        senders = lists.get("sender_domains", current.sender_domains), lists.get(
            "sender_addresses", current.sender_addresses)
        if ({"sender_domains", "sender_addresses"} & removing.keys()) and not any(senders):
            raise ValueError("an account needs at least one sender domain or sender address: "
                             "add another before removing the last")
        return lists

    found = store.change_account_lists(account_id, change)
    if found is None:
        raise LookupError(f"no account {account_id!r}")
    return found


def create_key(store: Any, account: str, *, scopes: list[str]) -> tuple[ApiKey, str]:
    """Return (stored key record, the key itself — to be shown once)."""
    found = store.get_account(account)
    if found is None:
        raise LookupError(f"no account {account!r}")
    if not scopes:  # a key that may do nothing is a mistake, not a key
        raise ValueError(f"a key needs at least one scope (choose from {', '.join(SCOPES)})")
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise ValueError(f"unknown scope {bad[0]!r} (choose from {', '.join(SCOPES)})")
    key, key_hash, prefix = generate_key()
    record = store.create_api_key(found.id, key_hash=key_hash, prefix=prefix, scopes=tuple(scopes))
    return record, key


def bootstrap(store: Any, hostname: str) -> tuple[Account, str] | None:
    """On an empty store, create a first account and key so `serve` is usable at once."""
    if store.count_accounts():
        return None
    account = create_account(
        store,
        "default",
        sender_domains=["example.com"],
        sender_addresses=[],
        trusted_networks=[],
    )
    _, key = create_key(store, account.id, scopes=["send", "read", "admin"])
    return account, key
