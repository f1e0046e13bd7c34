"""The rows one enqueue writes: a message, its recipients, their first events, usage counters.

Why a module of its own: the group-commit writer (commit.py) and delivery's DSNs
(outbound.py) both write messages, and on the writer thread every µs per message counts, so
the rows are built as plain tuples and sent through the driver (see fastsql.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postroom.model.records import EventType, NewMessage, RecipientStatus
from postroom.store import rows
from postroom.store.errors import InvalidData
from postroom.store.fastsql import INSERT_EVENT, Binds

Done = Callable[[BaseException | None], None]


@dataclass(slots=True)
class Unit:
    """What one caller asked for: all of it commits, or none of it."""

    messages: Sequence[NewMessage]
    accepted_at: datetime
    done: Done | None = None
    #: an `enqueue` coroutine's loop and future: settled in one wake-up per loop and batch
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[None] | None = None


def validate(batch: Sequence[NewMessage]) -> None:
    """Reject malformed input in the caller, before it can poison a shared batch."""
    for message in batch:
        if not message.recipients:
            raise ValueError(f"message {message.id} has no recipients")
        rows.require_aware(message.not_before, "not_before")


_INSERT_MESSAGE = (
    "INSERT INTO messages (id, account_id, mail_from, header_from, subject, message_id_header,"
    " size, raw, source, client_ip, options, created_at, not_before)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RECIPIENT = (
    "INSERT INTO recipients (message_id, address, domain, status, attempts, next_attempt_at,"
    " updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)"
)
_ADD_USAGE = (
    "INSERT INTO account_usage (account_id, day, count) VALUES (?, ?, ?)"
    " ON CONFLICT (account_id, day) DO UPDATE SET count = account_usage.count + excluded.count"
)
#: Message rows with more raw bytes than this are inserted one statement each on SQLite.
_BIG_RAW = 64 << 10
_INSERT_CHUNK = "INSERT INTO message_chunks (message_id, seq, data) VALUES (?, ?, ?)"
_QUEUED = (RecipientStatus.QUEUED.value, EventType.QUEUED.value)
_SCHEDULED = (RecipientStatus.SCHEDULED.value, EventType.SCHEDULED.value)


def write_messages(b: Binds, cur: Any, units: Sequence[Unit]) -> None:
    """Insert messages, recipients, their first events and usage counters for `units`.

    `cur` is a driver cursor inside a write transaction; rows are built as tuples and sent
    with one `executemany` per table (see fastsql.py for why not SQLAlchemy).
    """
    message_rows: list[tuple[Any, ...]] = []
    recipient_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    usage: dict[tuple[str, str], int] = {}
    chunked: list[NewMessage] = []
    ts, js = b.ts, b.json
    for unit in units:
        at = unit.accepted_at
        at_b = ts(at)
        day = at.strftime("%Y-%m-%d")
        for msg in unit.messages:
            message_rows.append((
                msg.id, msg.account_id, msg.mail_from, msg.header_from, msg.subject,
                msg.message_id_header, _size(msg), msg.raw, msg.source, msg.client_ip,
                js(dict(msg.options)), at_b, ts(msg.not_before),
            ))
            for address in msg.recipients:
                when = msg.recipient_not_before.get(address.lower(), msg.not_before) \
                    if msg.recipient_not_before else msg.not_before
                if when is not None and when > at:
                    status, kind = _SCHEDULED
                    next_at = ts(when)
                else:
                    status, kind = _QUEUED
                    next_at = at_b
                data = {"not_before": when.isoformat()} if when else {}
                recipient_rows.append(
                    (msg.id, address, domain_of(address), status, next_at, at_b)
                )
                event_rows.append((kind, msg.id, address, at_b, None, None, None, js(data)))
            if msg.body_path:
                chunked.append(msg)
            key = (msg.account_id, day)
            usage[key] = usage.get(key, 0) + 1
    if not message_rows:
        return
    big = any(len(r[7]) > _BIG_RAW for r in message_rows)  # 16 at once would all be copied
    b.insert(cur, _INSERT_MESSAGE, message_rows, sqlite_rows=1 if big else 16)
    for msg in chunked:
        copy_chunks(b, cur, msg.id, msg.body_path or "", msg.body_offset)
    b.insert(cur, _INSERT_RECIPIENT, recipient_rows)
    b.insert(cur, INSERT_EVENT, event_rows)
    b.insert(cur, _ADD_USAGE, [(a, d, n) for (a, d), n in sorted(usage.items())])


CHUNK = 1 << 20


def copy_chunks(b: Binds, cur: Any, message_id: str, path: str, offset: int = 0) -> None:
    """Stream a spooled body into message_chunks, one MiB in memory at a time."""
    try:
        f = open(path, "rb")  # noqa: SIM115  (closed below; the try is only for the open)
    except FileNotFoundError:
        raise _spool_gone(message_id) from None
    with f:
        f.seek(offset)
        seq = 0
        while data := f.read(CHUNK):
            cur.execute(b.q(_INSERT_CHUNK), (message_id, seq, data))
            seq += 1


def _size(msg: NewMessage) -> int:
    try:
        return msg.size
    except FileNotFoundError:
        raise _spool_gone(msg.id) from None


def _spool_gone(message_id: str) -> InvalidData:
    """A spool file that is gone is this unit's problem, not the database's (InvalidData, so
    the group commit retries the others alone): its SMTP session removed it after its caller's
    commit deadline passed while the writer was stuck."""
    return InvalidData(f"the spooled body of message {message_id} is gone")


def domain_of(address: str) -> str:
    """The lowercased part after the last @ ('' for a bare local part such as `postmaster`)."""
    return address.rpartition("@")[2].lower() if "@" in address else ""
