"""What delivery reads and writes beyond claiming: a message's envelope, and batched outcomes.

`record_outcomes` writes the results of a whole connection's worth of attempts in ONE
transaction (one fsync instead of one per recipient), together with what follows from them:
suppressions for hard bounces and the DSN messages for the senders. Because it is one
transaction, a crash can never leave a recipient bounced without its DSN queued, or the other
way round. Each outcome is still guarded by the lease owner (see delivery.py): follow-ups are
built only for the recipients whose outcome was actually recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from postroom.model.records import MessageRecord, NewMessage
from postroom.store import fastsql, rows
from postroom.store.accounts import suppression_insert
from postroom.store.delivery import Finish, finish_many
from postroom.store.engine import Database
from postroom.store.queue_rows import Unit, validate, write_messages
from postroom.store.reads import _MESSAGE_COLUMNS
from postroom.store.schema import message_chunks, messages

__all__ = ["Finish", "FollowUps", "load_for_delivery", "record_outcomes"]


@dataclass(frozen=True, slots=True)
class FollowUps:
    """Written in the same transaction as the outcomes they follow from."""

    #: (account_id, address, reason)
    suppressions: Sequence[tuple[str, str, str]] = ()
    #: new messages to queue (DSNs)
    messages: Sequence[NewMessage] = ()


def record_outcomes(
    db: Database,
    owner: str,
    items: Sequence[Finish],
    follow_ups: Callable[[set[int]], FollowUps] | None = None,
) -> set[int]:
    """Record `items` for lease owner `owner`; return the recipient ids actually recorded.

    `follow_ups(recorded_ids)` runs inside the transaction and says what else to write.
    """
    if not items:
        return set()
    with db.write() as conn:
        done = finish_many(conn, owner, items)
        if follow_ups is not None and done:
            extra = follow_ups(done)
            for account_id, address, reason in extra.suppressions:
                conn.execute(suppression_insert(db, account_id, address, reason))
            if extra.messages:
                validate(extra.messages)
                unit = Unit(extra.messages, accepted_at=rows.utc_now(), done=lambda _: None)
                with fastsql.cursor(conn) as cur:
                    write_messages(fastsql.for_dialect(conn.dialect), cur, [unit])
    return done


def load_for_delivery(
    db: Database, message_ids: Sequence[str]
) -> dict[str, tuple[MessageRecord, bytes]]:
    """Envelope and full bytes of several messages in one read transaction."""
    found: dict[str, tuple[MessageRecord, bytes]] = {}
    ids = sorted(set(message_ids))
    with db.read() as conn:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            for row in conn.execute(
                select(*_MESSAGE_COLUMNS, messages.c.raw).where(messages.c.id.in_(part))
            ):
                mapping = dict(row._mapping)
                raw = bytes(mapping.pop("raw"))
                found[row.id] = (rows.message(mapping, ()), raw)
            chunked = conn.execute(
                select(message_chunks.c.message_id, message_chunks.c.data)
                .where(message_chunks.c.message_id.in_(part))
                .order_by(message_chunks.c.message_id, message_chunks.c.seq)
            ).all()
            for message_id, data in chunked:
                record, raw = found[message_id]
                found[message_id] = (record, raw + bytes(data))
    return found
