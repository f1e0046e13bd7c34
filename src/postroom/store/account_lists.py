"""An account's lists (sender domains and addresses, allowed IPs, trusted networks), edited in
place: `postroom accounts update --add-…/--remove-…`.

The lists are JSON columns, so an edit is read, change, write. It happens in one write
transaction with the row locked (`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already
serialises writers), so two operators adding a domain each at the same moment both keep theirs.
What the new lists may be is the caller's policy (`postroom.admin.accounts`): it gets the
current account and returns the new lists, or raises to change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import select, update

from postroom.model.records import Account
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import accounts

__all__ = ["LIST_FIELDS", "AccountListsMixin", "change_account_lists"]

#: The account columns this module edits.
LIST_FIELDS = frozenset({"sender_domains", "sender_addresses", "allow_ips", "trusted_networks"})

#: Given the account as stored, the lists to store instead (only the ones that change).
ListChange = Callable[[Account], Mapping[str, Sequence[str]]]


def change_account_lists(db: Database, account_id: str, change: ListChange) -> Account | None:
    """Apply `change` to the account's current lists atomically; returns the account as now
    stored, or None when there is no such account. An exception from `change` propagates and
    leaves the account as it was."""
    with db.write() as conn:
        row = conn.execute(select(accounts).where(accounts.c.id == account_id)
                           .with_for_update()).first()
        if row is None:
            return None
        current = rows.account(row._mapping)
        values = {k: list(v) for k, v in change(current).items()}
        bad = set(values) - LIST_FIELDS
        if bad:
            raise ValueError(f"not an account list: {sorted(bad)}")
        if values:
            conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
        found = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
    return rows.account(found._mapping) if found is not None else None


class AccountListsMixin:
    """`Store.change_account_lists` (a mixin, like the HTTP and webhook parts of `Store`)."""

    _db: Database

    def change_account_lists(self, account_id: str, change: ListChange) -> Account | None:
        """Edit an account's lists atomically (see `change_account_lists`)."""
        return change_account_lists(self._db, account_id, change)
