"""Waiting for the events API to catch up on PostgreSQL.

`GET /v1/events` serves an event only once every older write transaction on the server has
ended (store/xact.py), and the server is shared: another test process's open transaction, in
any database, holds new events back for a moment. Tests that read events they just wrote call
`settle(store)` first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text

from postroom.model import EventType
from postroom.store.reads import event_row
from postroom.store.rows import utc_now
from postroom.store.schema import events

NEXT_XID = text("SELECT (pg_snapshot_xmax(pg_current_snapshot())::text)::bigint")
OLDEST_RUNNING = text("SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")


def settle(store: Any, timeout: float = 30.0) -> None:
    """Return once every transaction running now has ended (at once on SQLite)."""
    if store.dialect == "sqlite":
        return
    with store._db.engine.connect() as conn:
        target = conn.execute(NEXT_XID).scalar()
        conn.rollback()
        deadline = time.monotonic() + timeout
        while conn.execute(OLDEST_RUNNING).scalar() < target:
            conn.rollback()
            if time.monotonic() > deadline:
                raise TimeoutError(f"a transaction older than {target} is still running")
            time.sleep(0.01)


@contextmanager
def open_transaction(store: Any) -> Iterator[Connection]:
    """A connection with a transaction left open until the block ends (then committed): the
    late committer of the cursor tests."""
    with store._db.engine.connect() as conn, conn.begin():
        yield conn


def insert_event(conn: Connection, message_id: str, recipient: str,
                 type_: EventType = EventType.DELIVERED) -> int:
    """An event written on `conn` (inside its open transaction); its id."""
    row = event_row(type_, message_id=message_id, recipient=recipient, at=utc_now())
    return int(conn.execute(events.insert().values(**row)).inserted_primary_key[0])
