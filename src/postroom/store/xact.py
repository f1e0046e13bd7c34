"""PostgreSQL transaction ids: what makes the events cursor of the HTTP API safe.

Event ids come from a sequence taken before commit, so on PostgreSQL a higher id can commit
before a lower one, and a reader whose cursor passed the higher id would never see the lower.
Each event therefore records the (64-bit, epoch-extended) id of the transaction that wrote it
(`events.xact_id`, a column default), and readers serve only events whose transaction is
older than every transaction still in flight: `xact_id < xmin` of the reading statement's
snapshot. Those transactions have all ended, and every transaction that writes later gets a
higher id, so that set only ever grows at its end in (xact_id, id) order, which the cursor
follows. A writing transaction left open anywhere in the cluster delays events; none is lost.

SQLite has one writer at a time, so ids are commit order there: the column stays NULL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


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


@compiles(current_xact_id)
def _no_xact_id(element: Any, compiler: Any, **kw: Any) -> str:
    return "NULL"


@compiles(current_xact_id, "postgresql")
def _pg_xact_id(element: Any, compiler: Any, **kw: Any) -> str:
    return "(pg_current_xact_id()::text)::bigint"  # xid8 has no cast to bigint but via text


@compiles(snapshot_xmin, "postgresql")
def _pg_snapshot_xmin(element: Any, compiler: Any, **kw: Any) -> str:
    return "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"
