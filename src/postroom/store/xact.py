"""PostgreSQL transaction ids: what makes the events cursors safe (the HTTP API's, and
`Store.list_events(after=)` behind `postroom messages show`; `in_commit_order` is the rule).

Event ids come from a sequence taken before commit, so on PostgreSQL a higher id can commit
before a lower one, and a reader whose cursor passed the higher id would never see the lower.
Each event therefore records the (64-bit, epoch-extended) id of the transaction that wrote it
(`events.xact_id`, a column default), and readers serve only events whose transaction is
older than every transaction still in flight: `xact_id < xmin` of the reading statement's
snapshot. Those transactions have all ended, and every transaction that writes later gets a
higher id, so that set only ever grows at its end in (xact_id, id) order, which the cursor
follows. A writing transaction left open anywhere in the cluster delays events; none is lost
(`await_older_writers` lets a reader wait a moment for the ones about to end).

SQLite has one writer at a time, so ids are commit order there: the column stays NULL.

Also here, for the same reason (what concurrent PostgreSQL transactions can do to each other):
`key_lock`, which makes check-then-insert atomic across processes.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    Table,
    func,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

#: The first key of the advisory locks `key_lock` takes (the second is a hash of its key);
#: two-part keys never meet the one-part key of the migrations' lock.
KEY_LOCKS = 0x706F7374  # "post"
_KEY_LOCK = text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:key AS integer))")


class current_xact_id(FunctionElement[int]):
    """The writing transaction's id, as the `events.xact_id` server default (NULL on SQLite)."""

    type = BigInteger()
    name = "current_xact_id"
    inherit_cache = True


class snapshot_xmin(FunctionElement[int]):
    """The oldest transaction id still in flight for the current statement's snapshot
    (PostgreSQL only): every transaction with a lower id has committed or rolled back."""

    type = BigInteger()
    name = "snapshot_xmin"
    inherit_cache = True


class snapshot_xmax(FunctionElement[int]):
    """The first transaction id not yet handed out when the statement's snapshot was taken
    (PostgreSQL only): every transaction that had begun writing has a lower one."""

    type = BigInteger()
    name = "snapshot_xmax"
    inherit_cache = True


@compiles(current_xact_id)
def _no_xact_id(element: Any, compiler: Any, **kw: Any) -> str:
    return "NULL"


@compiles(current_xact_id, "postgresql")
def _pg_xact_id(element: Any, compiler: Any, **kw: Any) -> str:
    return "(pg_current_xact_id()::text)::bigint"  # xid8 has no cast to bigint but via text


@compiles(snapshot_xmin, "postgresql")
def _pg_snapshot_xmin(element: Any, compiler: Any, **kw: Any) -> str:
    return "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"


@compiles(snapshot_xmax, "postgresql")
def _pg_snapshot_xmax(element: Any, compiler: Any, **kw: Any) -> str:
    return "(pg_snapshot_xmax(pg_current_snapshot())::text)::bigint"


def in_commit_order(query: Select[Any], events: Table, after: int | None) -> Select[Any]:
    """PostgreSQL: only events of ended transactions, by (xact_id, id), after the position of
    event `after`. Events are immutable, so that position is the event's own pair, looked up
    by id; a cursor naming no event stands after the nearest lower id (0: the beginning)."""
    xmin = select(snapshot_xmin()).scalar_subquery()  # evaluated once per statement
    query = query.where(events.c.xact_id.is_not(None), events.c.xact_id < xmin).order_by(
        events.c.xact_id, events.c.id)
    if after is None:
        return query
    at = events.alias("cursor_event")
    after_xact = (select(at.c.xact_id).where(at.c.id <= after).order_by(at.c.id.desc())
                  .limit(1).scalar_subquery())
    return query.where(tuple_(events.c.xact_id, events.c.id)
                       > tuple_(func.coalesce(after_xact, -1), literal(after, BigInteger)))


def await_older_writers(conn: Connection, timeout: float) -> bool:
    """PostgreSQL: wait until every transaction that had begun writing when called has ended,
    at most `timeout` seconds (read committed: each poll is a new snapshot). Those are the
    ones that hold events back from `in_commit_order`; they usually end within milliseconds,
    and a reader that waits for them gets every event committed before it asked. False when
    one was still running at the deadline."""
    target = conn.execute(select(snapshot_xmax())).scalar_one()
    deadline = time.monotonic() + timeout
    pause = 0.001
    while conn.execute(select(snapshot_xmin())).scalar_one() < target:
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


def key_lock(conn: Connection, key: str) -> None:
    """PostgreSQL: serialize the transactions that name `key` until they end (an advisory
    transaction lock), so that "insert unless there is one already" is atomic across
    processes; read committed gives the statements after it a snapshot that sees what the
    previous holder committed. Nothing on SQLite, whose write transactions are serial."""
    if conn.dialect.name == "sqlite":
        return
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    conn.execute(_KEY_LOCK, {"space": KEY_LOCKS,
                             "key": int.from_bytes(digest, "big", signed=True)})
