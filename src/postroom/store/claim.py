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

from postroom.model.records import Claim, RecipientStatus
from postroom.store import fastsql, rows
from postroom.store.engine import Database

#: Statuses that still want a delivery attempt.
PENDING = (RecipientStatus.QUEUED.value, RecipientStatus.SCHEDULED.value,
           RecipientStatus.DEFERRED.value)


_DUE = (
    "SELECT id FROM recipients WHERE status IN (?, ?, ?)"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
    " AND (lease_until IS NULL OR lease_until < ?)"
    " ORDER BY next_attempt_at ASC NULLS FIRST, id LIMIT ?"
)
_LEASE = "UPDATE recipients SET lease_owner = ?, lease_until = ? WHERE "
_FOUND = (
    "SELECT r.id, r.message_id, r.address, r.domain, r.attempts, m.account_id, m.mail_from,"
    " m.created_at, m.not_before FROM recipients r JOIN messages m ON m.id = r.message_id WHERE "
)


def claim_due(
    db: Database, owner: str, *, now: datetime, limit: int, lease_seconds: float
) -> list[Claim]:
    """Lease up to `limit` due recipients to `owner`; returned sorted by domain.

    Three statements on the driver's cursor (see fastsql.py): the delivery process runs this
    for every batch, and SQLAlchemy's expanding IN and row processing cost more than SQL."""
    rows.require_aware(now, "now")
    if limit <= 0:
        return []
    lease_until = now + timedelta(seconds=lease_seconds)
    b = fastsql.for_dialect(db.engine.dialect)
    due = _DUE if b.sqlite else _DUE + " FOR UPDATE SKIP LOCKED"
    at = b.ts(now)
    with db.write(blocking=True) as conn, fastsql.cursor(conn) as cur:
        cur.execute(b.q(due), (*PENDING, at, at, limit))
        ids = [row[0] for row in cur.fetchall()]
        if not ids:
            return []
        where, params = b.in_list("id", ids)
        cur.execute(b.q(_LEASE + where), (owner, b.ts(lease_until), *params))
        where, params = b.in_list("r.id", ids)
        cur.execute(b.q(_FOUND + where), params)
        found = cur.fetchall()
    order = {rid: i for i, rid in enumerate(ids)}
    found.sort(key=lambda row: (row[3], order[row[0]]))
    return [
        Claim(
            recipient_id=rid, message_id=message_id, account_id=account_id,
            mail_from=mail_from, address=address, domain=domain, attempts=attempts,
            created_at=fastsql.ts_out(created_at), lease_until=lease_until,
            not_before=fastsql.ts_out(not_before) if not_before is not None else None,
        )
        for (rid, message_id, address, domain, attempts, account_id, mail_from, created_at,
             not_before) in found
    ]
