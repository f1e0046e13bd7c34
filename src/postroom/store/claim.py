"""Leasing due recipients to delivery workers: the only place where the dialects differ.

A claim is a lease, not a lock held across the SMTP conversation: the claiming transaction
sets `lease_owner`/`lease_until` and commits at once, so a worker that dies simply lets its
leases expire and another worker picks the recipients up again.

- PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` then `UPDATE` in the same transaction.
  Concurrent claimers skip each other's rows instead of queueing behind them, and a row that
  another claimer leased and committed meanwhile is re-checked against the WHERE clause by
  the row lock (so its fresh `lease_until` excludes it).
- SQLite: the write transaction starts with `BEGIN IMMEDIATE` (see engine.py), which makes
  claimers - threads or processes - strictly one at a time; no row locking exists or is needed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select

from postroom.model.records import Claim, RecipientStatus
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import messages, recipients

#: Statuses that still want a delivery attempt.
PENDING = (RecipientStatus.QUEUED.value, RecipientStatus.SCHEDULED.value,
           RecipientStatus.DEFERRED.value)


def claim_due(
    db: Database, owner: str, *, now: datetime, limit: int, lease_seconds: float
) -> list[Claim]:
    """Lease up to `limit` due recipients to `owner`; returned sorted by domain."""
    rows.require_aware(now, "now")
    if limit <= 0:
        return []
    lease_until = now + timedelta(seconds=lease_seconds)
    r = recipients.c
    due = (
        select(r.id)
        .where(
            r.status.in_(PENDING),
            or_(r.next_attempt_at.is_(None), r.next_attempt_at <= now),
            or_(r.lease_until.is_(None), r.lease_until < now),
        )
        .order_by(r.next_attempt_at.asc().nulls_first(), r.id)
        .limit(limit)
    )
    if not db.is_sqlite:
        due = due.with_for_update(skip_locked=True)
    with db.write() as conn:
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        conn.execute(
            recipients.update()
            .where(r.id.in_(ids))
            .values(lease_owner=owner, lease_until=lease_until)
        )
        found = conn.execute(
            select(
                r.id, r.message_id, r.address, r.domain, r.attempts,
                messages.c.account_id, messages.c.mail_from, messages.c.created_at,
            )
            .join(messages, messages.c.id == r.message_id)
            .where(r.id.in_(ids))
        ).all()
    order = {rid: i for i, rid in enumerate(ids)}
    found.sort(key=lambda row: (row.domain, order[row.id]))
    return [
        Claim(
            recipient_id=row.id, message_id=row.message_id, account_id=row.account_id,
            mail_from=row.mail_from, address=row.address, domain=row.domain,
            attempts=row.attempts, created_at=row.created_at, lease_until=lease_until,
        )
        for row in found
    ]
