"""Recording delivery outcomes: status change + event in one transaction, for the lease owner.

Every outcome is guarded by `lease_owner = :owner`: a worker whose lease expired and was taken
over by another worker can no longer overwrite that worker's result (the update matches no
row and the call returns False). A worker whose lease expired but was NOT taken over may still
record its outcome - the attempt really happened, and recording it avoids a duplicate send.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from postroom.model.records import EventType, RecipientStatus
from postroom.store import rows
from postroom.store.claim import PENDING
from postroom.store.engine import Database
from postroom.store.reads import event_row
from postroom.store.schema import events, recipients

_KEEP: Any = object()


def finish(db: Database, recipient_id: int, owner: str, **outcome: Any) -> bool:
    """Set the outcome of one attempt and append its event; False if `owner` lost the lease.
    `outcome`: the keyword arguments of `finish_in`."""
    with db.write() as conn:
        return finish_in(conn, recipient_id, owner, **outcome)


def finish_in(
    conn: Connection,
    recipient_id: int,
    owner: str,
    *,
    status: RecipientStatus,
    reply: str | None,
    attempt: int,
    remote_host: str | None = _KEEP,
    next_attempt_at: datetime | None = None,
    data: Mapping[str, Any] | None = None,
) -> bool:
    """`finish` inside the caller's write transaction (batched outcomes share one commit)."""
    rows.require_aware(next_attempt_at, "next_attempt_at")
    now = rows.utc_now()
    values: dict[str, Any] = {
        "status": status.value, "attempts": attempt, "last_reply": reply,
        "next_attempt_at": next_attempt_at, "lease_owner": None, "lease_until": None,
        "updated_at": now,
    }
    if remote_host is not _KEEP:
        values["remote_host"] = remote_host
    r = recipients.c
    updated = conn.execute(
        recipients.update().where(r.id == recipient_id, r.lease_owner == owner).values(values)
    ).rowcount
    if updated != 1:
        return False
    row = conn.execute(
        select(r.message_id, r.address, r.remote_host).where(r.id == recipient_id)
    ).one()
    conn.execute(events.insert().values(event_row(
        EventType(status.value), message_id=row.message_id, recipient=row.address, at=now,
        attempt=attempt, remote_host=row.remote_host, reply=reply, data=data,
    )))
    return True


def release_leases(db: Database, owner: str) -> int:
    """Drop every lease `owner` holds (graceful shutdown); returns how many."""
    stmt = (
        recipients.update()
        .where(recipients.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )
    with db.write() as conn:
        return int(conn.execute(stmt).rowcount)


def counts_by_status(db: Database) -> dict[str, int]:
    """Recipients per status; every status is present (0 when none)."""
    counts = {status.value: 0 for status in RecipientStatus}
    query = select(recipients.c.status, func.count()).group_by(recipients.c.status)
    with db.read() as conn:
        for status, count in conn.execute(query):
            counts[status] = int(count)
    return counts


def next_due_at(db: Database) -> datetime | None:
    """The earliest time a pending recipient is (or becomes) claimable, or None if none is.

    Lets the delivery loop sleep until there is work instead of polling blindly; a leased
    row counts at its lease expiry, an unleased one at its next_attempt_at.
    """
    r = recipients.c
    pending = r.status.in_(PENDING)
    with db.read() as conn:
        unleased = conn.execute(
            select(func.min(r.next_attempt_at)).where(pending, r.lease_until.is_(None))
        ).scalar_one_or_none()
        leased = conn.execute(
            select(func.min(r.lease_until)).where(pending, r.lease_until.is_not(None))
        ).scalar_one_or_none()
        no_time = conn.execute(
            select(r.id).where(pending, r.lease_until.is_(None), r.next_attempt_at.is_(None))
            .limit(1)
        ).first()
    if no_time is not None:
        return rows.utc_now()
    candidates = [_aware(v) for v in (unleased, leased) if v is not None]
    return min(candidates) if candidates else None


def _aware(value: Any) -> datetime:
    """Belt and braces: min() keeps the column type, but never hand out a naive datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
