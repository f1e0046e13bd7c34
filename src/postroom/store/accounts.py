"""Accounts, API keys, suppressions and daily usage: small, infrequent, row-at-a-time queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from postroom.model.ids import new_id
from postroom.model.records import Account, ApiKey, Suppression
from postroom.store import fastsql, rows
from postroom.store.engine import Database
from postroom.store.schema import account_usage, accounts, api_keys, suppressions

#: Addresses per `IN (...)` list: well below SQLite's bound-parameter limit.
_CHUNK = 500


def create_account(
    db: Database,
    name: str,
    *,
    sender_domains: Sequence[str],
    sender_addresses: Sequence[str],
    bounce_address: str | None,
    daily_limit: int | None,
    allow_ips: Sequence[str],
    trusted_networks: Sequence[str],
) -> Account:
    account = Account(
        id=new_id(),
        name=name,
        sender_domains=tuple(sender_domains),
        sender_addresses=tuple(sender_addresses),
        bounce_address=bounce_address,
        daily_limit=daily_limit,
        allow_ips=tuple(allow_ips),
        trusted_networks=tuple(trusted_networks),
        created_at=rows.utc_now(),
    )
    with db.write() as conn:
        conn.execute(
            accounts.insert().values(
                id=account.id,
                name=account.name,
                sender_domains=list(account.sender_domains),
                sender_addresses=list(account.sender_addresses),
                bounce_address=account.bounce_address,
                daily_limit=account.daily_limit,
                allow_ips=list(account.allow_ips),
                trusted_networks=list(account.trusted_networks),
                created_at=account.created_at,
            )
        )
    return account


def get_account(db: Database, name_or_id: str) -> Account | None:
    query = select(accounts).where(or_(accounts.c.id == name_or_id, accounts.c.name == name_or_id))
    with db.read() as conn:
        found = conn.execute(query.order_by(accounts.c.id)).all()
    # An id match wins over a name match (a name could look like another account's id).
    for row in found:
        if row.id == name_or_id:
            return rows.account(row._mapping)
    return rows.account(found[0]._mapping) if found else None


def list_accounts(db: Database) -> list[Account]:
    query = select(accounts).order_by(accounts.c.name)
    with db.read() as conn:
        return [rows.account(r._mapping) for r in conn.execute(query)]


def count_accounts(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(accounts)).scalar_one())


def create_api_key(
    db: Database, account_id: str, *, key_hash: str, prefix: str, scopes: Sequence[str]
) -> ApiKey:
    key = ApiKey(
        id=new_id(), account_id=account_id, prefix=prefix, scopes=tuple(scopes),
        created_at=rows.utc_now(),
    )
    with db.write() as conn:
        conn.execute(
            api_keys.insert().values(
                id=key.id, account_id=account_id, key_hash=key_hash, prefix=prefix,
                scopes=list(key.scopes), created_at=key.created_at, revoked_at=None,
            )
        )
    return key


def find_api_key(db: Database, key_hash: str) -> tuple[ApiKey, Account] | None:
    query = (
        select(api_keys, accounts)
        .join(accounts, accounts.c.id == api_keys.c.account_id)
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    )
    with db.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    # Both tables have id/created_at: build each record from its own table's columns.
    values = row._mapping
    key = rows.api_key({c.name: values[c] for c in api_keys.c})
    account = rows.account({c.name: values[c] for c in accounts.c})
    return key, account


def list_api_keys(db: Database, account_id: str | None) -> list[ApiKey]:
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    with db.read() as conn:
        return [rows.api_key(r._mapping) for r in conn.execute(query)]


def revoke_api_key(db: Database, key_id_or_prefix: str) -> bool:
    """Revoke by id, else by prefix; an ambiguous prefix revokes nothing and raises."""
    active = api_keys.c.revoked_at.is_(None)
    with db.write() as conn:
        ids = conn.execute(
            select(api_keys.c.id).where(api_keys.c.id == key_id_or_prefix, active)
        ).scalars().all()
        if not ids:
            ids = conn.execute(
                select(api_keys.c.id).where(api_keys.c.prefix == key_id_or_prefix, active)
            ).scalars().all()
        if len(ids) > 1:
            raise ValueError(
                f"prefix {key_id_or_prefix!r} matches {len(ids)} active keys; use the key id"
            )
        if not ids:
            return False
        conn.execute(
            api_keys.update().where(api_keys.c.id == ids[0]).values(revoked_at=rows.utc_now())
        )
        return True


def add_suppression(db: Database, account_id: str, address: str, reason: str) -> None:
    with db.write() as conn:
        conn.execute(suppression_insert(db, account_id, address, reason))


def suppression_insert(db: Database, account_id: str, address: str, reason: str) -> Any:
    """The INSERT that suppresses `address` (a repeat is a no-op), for any write transaction."""
    return db.insert(suppressions).values(
        account_id=account_id, address=address.lower(), reason=reason,
        created_at=rows.utc_now(),
    ).on_conflict_do_nothing(index_elements=["account_id", "address"])


def remove_suppression(db: Database, account_id: str, address: str) -> bool:
    stmt = suppressions.delete().where(
        suppressions.c.account_id == account_id, suppressions.c.address == address.lower()
    )
    with db.write() as conn:
        return conn.execute(stmt).rowcount > 0


def suppressed_among(db: Database, account_id: str, addresses: Iterable[str]) -> set[str]:
    by_lower: dict[str, list[str]] = {}
    for address in addresses:
        by_lower.setdefault(address.lower(), []).append(address)
    if not by_lower:
        return set()
    keys = list(by_lower)
    found: set[str] = set()
    b = fastsql.for_dialect(db.engine.dialect)  # checked for every delivery batch: raw SQL
    with db.read() as conn, fastsql.cursor(conn) as cur:
        for start in range(0, len(keys), _CHUNK):
            where, params = b.in_list("address", keys[start : start + _CHUNK])
            cur.execute(b.q("SELECT address FROM suppressions WHERE account_id = ? AND " + where),
                        [account_id, *params])
            found.update(row[0] for row in cur.fetchall())
    return {spelling for lower in found for spelling in by_lower[lower]}


def suppressions_since(
    db: Database, account_id: str, since: datetime | None
) -> list[tuple[str, datetime]]:
    query = select(suppressions.c.address, suppressions.c.created_at).where(
        suppressions.c.account_id == account_id
    )
    if since is not None:
        query = query.where(suppressions.c.created_at >= since)
    with db.read() as conn:
        return [(r[0], r[1]) for r in conn.execute(query)]


def list_suppressions(db: Database, account_id: str) -> list[Suppression]:
    query = (
        select(suppressions)
        .where(suppressions.c.account_id == account_id)
        .order_by(suppressions.c.address)
    )
    with db.read() as conn:
        return [rows.suppression(r._mapping) for r in conn.execute(query)]


def daily_count(db: Database, account_id: str, day: str) -> int:
    query = select(account_usage.c.count).where(
        account_usage.c.account_id == account_id, account_usage.c.day == day
    )
    with db.read() as conn:
        value = conn.execute(query).scalar_one_or_none()
    return int(value or 0)
