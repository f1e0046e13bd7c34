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

from postroom.model.records import MessageRecord, NewMessage
from postroom.store import fastsql, rows
from postroom.store.accounts import suppression_insert
from postroom.store.delivery import Finish, finish_many
from postroom.store.engine import Database
from postroom.store.queue_rows import Unit, validate, write_messages

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
    with db.write(blocking=True) as conn:  # delivery's hot path (see write_lock.py)
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


_LOAD_COLUMNS = ("id", "account_id", "mail_from", "header_from", "subject", "message_id_header",
                 "size", "source", "client_ip", "options", "created_at", "not_before")
_LOAD = f"SELECT {', '.join(_LOAD_COLUMNS)}, raw FROM messages WHERE "
_CHUNKS = "SELECT message_id, data FROM message_chunks WHERE "


def load_for_delivery(
    db: Database, message_ids: Sequence[str]
) -> dict[str, tuple[MessageRecord, bytes]]:
    """Envelope and full bytes of several messages in one read transaction.

    On the driver's cursor (see fastsql.py): the delivery process reads every message it
    sends through here, and SQLAlchemy's row processing cost 47 µs a message."""
    found: dict[str, tuple[MessageRecord, bytes]] = {}
    ids = sorted(set(message_ids))
    b = fastsql.for_dialect(db.engine.dialect)
    ts_out, json_out = fastsql.ts_out, fastsql.json_out
    with db.read() as conn, fastsql.cursor(conn) as cur:
        for start in range(0, len(ids), 500):
            where, params = b.in_list("id", ids[start : start + 500])
            cur.execute(b.q(_LOAD + where), params)
            for *values, raw in cur.fetchall():
                m = dict(zip(_LOAD_COLUMNS, values, strict=True))
                m["options"] = json_out(m["options"])
                m["created_at"], m["not_before"] = ts_out(m["created_at"]), ts_out(m["not_before"])
                found[m["id"]] = (rows.message(m, ()), raw if type(raw) is bytes else bytes(raw))
            where, params = b.in_list("message_id", ids[start : start + 500])
            cur.execute(b.q(_CHUNKS + where + " ORDER BY message_id, seq"), params)
            for message_id, data in cur.fetchall():
                record, raw = found[message_id]
                found[message_id] = (record, raw + bytes(data))
    return found
