"""Webhook deliveries being sent: leases, attempts and their outcomes, the queue's counts.

Leases work as in `claim.py`: FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite.
A claim leaves out receivers (endpoints) and accounts that are full or cooling down and takes
at most their room: one slow receiver, or one account's many dead ones, cannot fill a batch.
Signing secrets are read with the claim, so the sender signs with what is current.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from postroom.model.webhooks import AttemptOutcome, DeliveryJob, DeliveryStatus
from postroom.store import rows
from postroom.store.delivery import _aware
from postroom.store.engine import Database
from postroom.store.schema import (
    webhook_account_secrets,
    webhook_attempts,
    webhook_deliveries,
    webhooks,
)
from postroom.store.webhook_rows import in_chunks
from postroom.store.webhooks import signing_secrets


def _unlimited(_: str) -> int:
    return 1 << 30


def claim(db: Database, owner: str, *, now: datetime, limit: int, lease_seconds: float,
          skip: Collection[str] = (), room: Callable[[str], int] = _unlimited
          ) -> list[DeliveryJob]:
    """Lease up to `limit` due deliveries, leaving out endpoints in `skip` and taking at most
    `room(endpoint)` for each other one (so one slow endpoint cannot fill a batch)."""
    return [job for _, job in claim_by_account(db, owner, now=now, limit=limit,
                                               lease_seconds=lease_seconds, skip=skip,
                                               room=room)]


def claim_by_account(db: Database, owner: str, *, now: datetime, limit: int,
                     lease_seconds: float, skip: Collection[str] = (),
                     room: Callable[[str], int] = _unlimited,
                     skip_accounts: Collection[str] = (),
                     account_room: Callable[[str], int] = _unlimited,
                     ) -> list[tuple[str, DeliveryJob]]:
    """`claim`, each job with its account id, also leaving out the accounts in
    `skip_accounts` and taking at most `account_room(account)` for each other one: many
    endpoints of one account (distinct notify URLs, all dead) cannot fill every slot."""
    d = webhook_deliveries.c
    due = (select(d.id, d.endpoint, d.account_id).where(
        d.status == DeliveryStatus.PENDING.value, d.next_attempt_at <= now,
        or_(d.lease_until.is_(None), d.lease_until < now),
    ).order_by(d.next_attempt_at, d.id).limit(limit * 4))
    if skip:
        due = due.where(d.endpoint.not_in(list(skip)))
    if skip_accounts:
        due = due.where(d.account_id.not_in(list(skip_accounts)))
    if not db.is_sqlite:
        due = due.with_for_update(skip_locked=True)
    with db.write(blocking=True) as conn:  # background: see write_lock.py
        per_endpoint: dict[str, int] = {}
        per_account: dict[str, int] = {}
        ids = []
        for did, endpoint, account in conn.execute(due):
            if len(ids) < limit and per_endpoint.get(endpoint, 0) < room(endpoint) and \
                    per_account.get(account, 0) < account_room(account):
                per_endpoint[endpoint] = per_endpoint.get(endpoint, 0) + 1
                per_account[account] = per_account.get(account, 0) + 1
                ids.append(did)
        if not ids:
            return []
        conn.execute(update(webhook_deliveries).where(d.id.in_(ids)).values(
            lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds)))
        found = conn.execute(select(webhook_deliveries).where(d.id.in_(ids))).mappings().all()
        keys = _secrets_for(conn, found, now)
    order = {did: i for i, did in enumerate(ids)}
    return [(m["account_id"], DeliveryJob(
        id=m["id"], url=m["url"], endpoint=m["endpoint"], content_type=m["content_type"],
        body=m["body"], event_ids=tuple(m["event_ids"] or ()), attempts=m["attempts"],
        created_at=m["created_at"], give_up_at=m["give_up_at"],
        secrets=keys.get(m["webhook_id"] or m["account_id"], ()),
    )) for m in sorted(found, key=lambda m: order[m["id"]])]


def _secrets_for(conn: Any, found: Sequence[Any], now: datetime) -> dict[str, tuple[str, ...]]:
    """{webhook id or account id: signing secrets} for the claimed deliveries."""
    hook_ids = sorted({m["webhook_id"] for m in found if m["webhook_id"]})
    account_ids = sorted({m["account_id"] for m in found if not m["webhook_id"]})
    keys: dict[str, tuple[str, ...]] = {}
    for table, key_col, wanted in ((webhooks, webhooks.c.id, hook_ids),
                                   (webhook_account_secrets,
                                    webhook_account_secrets.c.account_id, account_ids)):
        for row in in_chunks(conn, lambda part, t=table, k=key_col: select(
                k, t.c.secret, t.c.previous_secret, t.c.previous_secret_until
        ).where(k.in_(part)), wanted):
            keys[row[0]] = signing_secrets(row[1], row[2], row[3], now)
    return keys


def record(db: Database, owner: str, outcomes: Sequence[AttemptOutcome]) -> int:
    """Record attempts and their consequences in one transaction; returns how many deliveries
    changed (an attempt whose lease was lost is still kept in the history)."""
    if not outcomes:
        return 0
    d = webhook_deliveries.c
    changed = 0
    now = rows.utc_now()
    with db.write(blocking=True) as conn:  # background: see write_lock.py
        for o in outcomes:
            rows.require_aware(o.next_attempt_at, "next_attempt_at")
            changed += conn.execute(update(webhook_deliveries).where(
                d.id == o.delivery_id, d.lease_owner == owner,
            ).values(status=o.status.value, attempts=o.attempt, next_attempt_at=o.next_attempt_at,
                     lease_owner=None, lease_until=None, last_status_code=o.status_code,
                     last_error=o.error, updated_at=now)).rowcount
        conn.execute(webhook_attempts.insert(), [{
            "delivery_id": o.delivery_id, "attempt": o.attempt, "at": o.at,
            "duration_ms": o.duration_ms, "status_code": o.status_code,
            "error": (o.error or None) and o.error[:1000]} for o in outcomes])
    return changed


def release(db: Database, owner: str) -> int:
    """Drop `owner`'s leases (graceful stop): those deliveries are due again at once."""
    with db.write(blocking=True) as conn:  # background: see write_lock.py
        return int(conn.execute(update(webhook_deliveries).where(
            webhook_deliveries.c.lease_owner == owner,
        ).values(lease_owner=None, lease_until=None)).rowcount)


def counts(db: Database) -> dict[str, int]:
    """Deliveries per status (every status present)."""
    found = {s.value: 0 for s in DeliveryStatus}
    with db.read() as conn:
        for status, n in conn.execute(select(webhook_deliveries.c.status, func.count())
                                      .group_by(webhook_deliveries.c.status)):
            found[status] = int(n)
    return found


def next_due_at(db: Database) -> datetime | None:
    """When the earliest pending delivery is due (None when none is pending)."""
    d = webhook_deliveries.c
    with db.read() as conn:
        value = conn.execute(select(func.min(func.coalesce(d.lease_until, d.next_attempt_at)))
                             .where(d.status == DeliveryStatus.PENDING.value)).scalar()
    return None if value is None else _aware(value)
