"""Recording delivery outcomes: status change + event in one transaction, for the lease owner.

Every outcome is guarded by `lease_owner = :owner`: a worker whose lease expired and was taken
over by another worker can no longer overwrite that worker's result (the update matches no
row and the call returns False). A worker whose lease expired but was NOT taken over may still
record its outcome - the attempt really happened, and recording it avoids a duplicate send.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from postroom.model.records import EventType, RecipientStatus
from postroom.store import fastsql, rows
from postroom.store.claim import PENDING
from postroom.store.engine import Database
from postroom.store.fastsql import INSERT_EVENT, for_dialect
from postroom.store.schema import recipients

_KEEP: Any = object()


@dataclass(frozen=True, slots=True)
class Finish:
    """The outcome of one attempt for one recipient (see `Store.mark_*` for the meanings)."""

    recipient_id: int
    status: RecipientStatus
    reply: str | None
    attempt: int
    remote_host: str | None = _KEEP
    next_attempt_at: Any = None
    data: Mapping[str, Any] = field(default_factory=dict)


#: The guarded update; RETURNING gives what the event needs (remote_host as it now is).
_SET = ("UPDATE recipients SET status = ?, attempts = ?, last_reply = ?, next_attempt_at = ?,"
        " lease_owner = NULL, lease_until = NULL, updated_at = ?")
_WHERE = " WHERE id = ? AND lease_owner = ? RETURNING id, message_id, address, remote_host"
_UPDATE_KEEP_HOST = _SET + _WHERE
_UPDATE_SET_HOST = _SET + ", remote_host = ?" + _WHERE


def finish(db: Database, recipient_id: int, owner: str, **outcome: Any) -> bool:
    """Set the outcome of one attempt and append its event; False if `owner` lost the lease.
    `outcome`: the fields of `Finish` but the recipient id."""
    with db.write() as conn:
        return bool(finish_many(conn, owner, [Finish(recipient_id, **outcome)]))


def finish_many(conn: Connection, owner: str, items: Sequence[Finish]) -> set[int]:
    """`finish` for several recipients inside the caller's write transaction (one commit);
    returns the recipient ids whose outcome was recorded."""
    b = for_dialect(conn.dialect)
    now = b.ts(rows.utc_now())
    todo: list[tuple[bool, tuple[Any, ...], tuple[Any, ...]]] = []  # (keep, params, event)
    for item in items:
        rows.require_aware(item.next_attempt_at, "next_attempt_at")
        keep = item.remote_host is _KEEP
        head = (item.status.value, item.attempt, item.reply, b.ts(item.next_attempt_at), now)
        tail = (item.recipient_id, owner)
        event = (EventType(item.status.value).value, item.attempt, item.reply,
                 b.json(dict(item.data or {})))
        todo.append((keep, head + tail if keep else (*head, item.remote_host, *tail), event))
    updated: list[int] = []
    events: list[tuple[Any, ...]] = []

    def returned(found: list[tuple[Any, ...]], event: tuple[Any, ...]) -> None:
        for rid, message_id, address, remote_host in found:  # zero rows or one
            kind, attempt, reply, data = event
            updated.append(rid)
            events.append((kind, message_id, address, now, attempt, remote_host, reply, data))

    with fastsql.cursor(conn) as cur:
        if b.sqlite:  # one execute each: sqlite3 cannot executemany a RETURNING statement
            for keep, values, event in todo:
                cur.execute(_UPDATE_KEEP_HOST if keep else _UPDATE_SET_HOST, values)
                returned(cur.fetchall(), event)
        else:  # consecutive items of one form go in one pipelined executemany
            for keep, group in itertools.groupby(todo, key=lambda t: t[0]):
                run = list(group)
                sql = b.q(_UPDATE_KEEP_HOST if keep else _UPDATE_SET_HOST)
                cur.executemany(sql, [values for _, values, _ in run], returning=True)
                for _, _, event in run:  # one result set per parameter set, in order
                    returned(cur.fetchall(), event)
                    cur.nextset()
        if events:
            b.insert(cur, INSERT_EVENT, events)
    return set(updated)


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
