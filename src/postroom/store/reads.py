"""Reading messages and the event log, and appending events that are not delivery outcomes.

Message ids are ULIDs (time-ordered), so "newest first" is `ORDER BY id DESC` on the primary
key and `before=<id>` is a stable cursor for pagination. Events are read oldest first, and
`after=<event id>` resumes after an event (`postroom messages show` pages that way): on SQLite
by id, which is commit order there (one writer at a time); on PostgreSQL in the order and with
the rule of the HTTP events cursor (store/xact.py), so that no page passes over an event that
a slower transaction commits later.

Some events state a fact about a recipient that a repeated report must not state again
(`ONCE_PER_RECIPIENT`): `insert_event` records them once per (message, recipient).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from postroom.model.records import Event, EventType, MessageRecord, RecipientRecord
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import events, message_chunks, messages, recipients
from postroom.store.xact import await_older_writers, in_commit_order, key_lock

#: Every message column except the raw bytes (which can be large and are fetched separately).
_MESSAGE_COLUMNS = [c for c in messages.c if c.name != "raw"]
_CHUNK = 500


def _recipients_for(conn: Connection, ids: Sequence[str]) -> dict[str, list[RecipientRecord]]:
    found: dict[str, list[RecipientRecord]] = {i: [] for i in ids}
    for start in range(0, len(ids), _CHUNK):
        query = (
            select(recipients)
            .where(recipients.c.message_id.in_(ids[start : start + _CHUNK]))
            .order_by(recipients.c.id)
        )
        for row in conn.execute(query):
            found[row.message_id].append(rows.recipient(row._mapping))
    return found


def get_message(db: Database, message_id: str) -> MessageRecord | None:
    with db.read() as conn:
        row = conn.execute(
            select(*_MESSAGE_COLUMNS).where(messages.c.id == message_id)
        ).first()
        if row is None:
            return None
        rcpts = _recipients_for(conn, [message_id])[message_id]
    return rows.message(row._mapping, tuple(rcpts))


def list_messages(
    db: Database, *, limit: int, account_id: str | None, before: str | None
) -> list[MessageRecord]:
    query = select(*_MESSAGE_COLUMNS).order_by(messages.c.id.desc()).limit(max(0, limit))
    if account_id is not None:
        query = query.where(messages.c.account_id == account_id)
    if before is not None:
        query = query.where(messages.c.id < before)
    with db.read() as conn:
        found = conn.execute(query).all()
        rcpts = _recipients_for(conn, [r.id for r in found])
    return [rows.message(r._mapping, tuple(rcpts[r.id])) for r in found]


def get_raw(db: Database, message_id: str) -> bytes | None:
    with db.read() as conn:
        value = conn.execute(
            select(messages.c.raw).where(messages.c.id == message_id)
        ).scalar_one_or_none()
        if value is None:
            return None
        chunks = conn.execute(
            select(message_chunks.c.data).where(message_chunks.c.message_id == message_id)
            .order_by(message_chunks.c.seq)
        ).scalars().all()
    return bytes(value) + b"".join(chunks) if chunks else bytes(value)


#: How long a paged read on PostgreSQL waits for older transactions to end before it serves
#: what has (the rest comes with a later page, never skipped).
SETTLE_SECONDS = 2.0


def list_events(
    db: Database, message_id: str | None, *, limit: int, after: int | None
) -> list[Event]:
    """Oldest first, after event `after`. On PostgreSQL a short first page is the whole log as
    it stands and is served at once; any page a caller may go on from (a full one, or one with
    a cursor) holds only events of ended transactions, after waiting briefly for those still
    running (`SETTLE_SECONDS`)."""
    query = select(events).limit(max(0, limit))
    if message_id is not None:
        query = query.where(events.c.message_id == message_id)
    if db.is_sqlite:
        query = query.order_by(events.c.id)
        return _events(db, query if after is None else query.where(events.c.id > after))
    if after is None:
        found = _events(db, query.order_by(events.c.xact_id, events.c.id))
        if len(found) < limit:
            return found
    with db.read() as conn:
        await_older_writers(conn, SETTLE_SECONDS)
        return [rows.event(r._mapping) for r in conn.execute(
            in_commit_order(query, events, after))]


def _events(db: Database, query: Select[Any]) -> list[Event]:
    with db.read() as conn:
        return [rows.event(r._mapping) for r in conn.execute(query)]


def event_row(
    type: EventType | str,
    *,
    message_id: str | None,
    recipient: str | None,
    at: datetime,
    attempt: int | None = None,
    remote_host: str | None = None,
    reply: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One `events` row; validates the type against the shared vocabulary."""
    return {
        "type": EventType(type).value, "message_id": message_id, "recipient": recipient,
        "at": at, "attempt": attempt, "remote_host": remote_host, "reply": reply,
        "data": dict(data or {}),
    }


def append_event(db: Database, row: dict[str, Any]) -> int:
    """Insert one event and return its id (for a repeat of a `ONCE_PER_RECIPIENT` event, the
    id of the event that records it already)."""
    with db.write() as conn:
        return insert_event(conn, row)[0]


#: Facts about a recipient of a message that a report can only state once: a repeated
#: unsubscribe (an RFC 8058 client's retry, the mailto sent twice) or complaint (the ARF report
#: again, a remote MTA's retry after our 451) records nothing.
ONCE_PER_RECIPIENT = frozenset({EventType.UNSUBSCRIBED.value, EventType.COMPLAINED.value})


def insert_event(conn: Connection, row: dict[str, Any]) -> tuple[int, bool]:
    """Insert one event in the caller's write transaction: (its id, True). An event of a
    `ONCE_PER_RECIPIENT` type whose (message, recipient in any case, type) is recorded already
    is not inserted: (the recorded event's id, False). Atomic across processes (`key_lock`);
    events without a message or recipient are always inserted."""
    kind, message_id, recipient = row["type"], row["message_id"], row["recipient"]
    if kind in ONCE_PER_RECIPIENT and message_id is not None and recipient:
        key_lock(conn, f"event {kind} {message_id} {recipient.lower()}")
        found = conn.execute(select(events.c.id).where(
            events.c.message_id == message_id, events.c.type == kind,
            func.lower(events.c.recipient) == recipient.lower(),
        ).order_by(events.c.id).limit(1)).scalar()
        if found is not None:
            return int(found), False
    return int(conn.execute(events.insert().values(**row)).inserted_primary_key[0]), True
