"""What mail coming back to Postroom changes: asynchronous bounces matched through VERP."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from postroom.model.records import EventType, RecipientStatus
from postroom.store import rows
from postroom.store.accounts import suppression_insert
from postroom.store.engine import Database
from postroom.store.schema import events, messages, recipients


def record_async_bounce(
    db: Database, message_id: str, recipient_id: int, *, reply: str, hard: bool,
    data: dict[str, Any],
) -> tuple[str, str] | None:
    """Mark a recipient bounced after the fact (it may have been `delivered`: the receiver
    accepted, then bounced); event `bounced` with data {"async": true, ...}; suppress the address
    when `hard`. Returns (account_id, address), or None when no such recipient exists or it is
    `bounced` already.

    Recorded once however often the report arrives, also when two ingress processes take it
    at the same moment: the recipient's status changes only from another status, and the
    event and suppression go in only with that change. On PostgreSQL the second UPDATE waits
    for the first transaction's row lock, then finds the row bounced and changes nothing."""
    now = rows.utc_now()
    with db.write() as conn:
        found = conn.execute(
            select(recipients.c.address, recipients.c.attempts, messages.c.account_id)
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(recipients.c.id == recipient_id, recipients.c.message_id == message_id)
        ).first()
        if found is None:
            return None
        address, attempts, account_id = found
        changed = conn.execute(update(recipients).where(
            recipients.c.id == recipient_id,
            recipients.c.status != RecipientStatus.BOUNCED.value,
        ).values(
            status=RecipientStatus.BOUNCED.value, last_reply=reply[:1000], lease_owner=None,
            lease_until=None, next_attempt_at=None, updated_at=now)).rowcount
        if not changed:
            return None
        conn.execute(events.insert().values(
            type=EventType.BOUNCED.value, message_id=message_id, recipient=address, at=now,
            attempt=attempts, remote_host=None, reply=reply[:1000],
            data={"async": True, "hard": hard, **data}))
        if hard:
            conn.execute(suppression_insert(db, account_id, address, "bounce"))
    return account_id, address


def recipient_of(db: Database, message_id: str, recipient_id: int) -> tuple[str, str] | None:
    """(account_id, address) of one recipient of one message."""
    with db.read() as conn:
        found = conn.execute(
            select(messages.c.account_id, recipients.c.address)
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(recipients.c.id == recipient_id, recipients.c.message_id == message_id)
        ).first()
    return (found[0], found[1]) if found else None
