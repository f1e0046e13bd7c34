"""Reading messages and the event log, and appending events that are not delivery outcomes.

Message ids are ULIDs (time-ordered), so "newest first" is `ORDER BY id DESC` on the primary
key and `before=<id>` is a stable cursor for pagination. Events are ordered by their
autoincrement id, which is commit order for a single writer and insertion order otherwise;
`after=<event id>` lets a consumer (webhooks, `events tail`) resume where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from postroom.model.records import Event, EventType, MessageRecord, RecipientRecord
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import events, message_chunks, messages, recipients

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


def list_events(
    db: Database, message_id: str | None, *, limit: int, after: int | None
) -> list[Event]:
    query = select(events).order_by(events.c.id).limit(max(0, limit))
    if message_id is not None:
        query = query.where(events.c.message_id == message_id)
    if after is not None:
        query = query.where(events.c.id > after)
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
    """Insert one event and return its id."""
    with db.write() as conn:
        result = conn.execute(events.insert().values(**row))
        return int(result.inserted_primary_key[0])
