"""Hot-path statements on the driver's own cursor, without SQLAlchemy's per-statement machinery.

Why: the group-commit writer thread is the ingest bottleneck, and profiles of it were mostly
SQLAlchemy (statement compilation and caching, bind processing, result processing, a pool
checkout per commit), not SQLite or PostgreSQL. The few statements on the hot paths (enqueue,
claim, outcomes) are therefore written by hand and run with the DBAPI cursor's `execute` /
`executemany`; everything else keeps using SQLAlchemy Core.

What is stored must stay exactly what SQLAlchemy writes, or readers through Core would break:
- `UTCDateTime` on SQLite: naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff` (the storage format of
  SQLAlchemy's SQLite DATETIME); on PostgreSQL an aware datetime for the timestamptz column.
- `JSON`: `json.dumps` text on SQLite; on PostgreSQL psycopg's `Json` wrapper, which is what
  SQLAlchemy's psycopg dialect binds (and which also serializes with `json.dumps`).
tests/store/test_fastsql.py holds both against SQLAlchemy's own bind and result processing.

Statements are written with `?` placeholders and turned into `%s` for psycopg by `Binds.q`.
Driver exceptions are re-raised as SQLAlchemy's (`driver_errors`) so that `errors.translate`
classifies them exactly as before (AlreadyExists, InvalidData, StorageFull, ...).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

#: Shared by enqueue (first events) and outcomes (delivery events).
INSERT_EVENT = (
    "INSERT INTO events (type, message_id, recipient, at, attempt, remote_host, reply, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class Binds:
    """Placeholder style and value conversions of one dialect (`for_dialect` caches them)."""

    def __init__(self, name: str) -> None:
        self.sqlite = name == "sqlite"
        self.ts: Callable[[datetime | None], Any] = _ts_sqlite if self.sqlite else _ts_pg
        self.json: Callable[[Any], Any] = json.dumps
        self._raw_cursor: Any = None
        if not self.sqlite:
            import psycopg
            from psycopg.types.json import Json

            self.json = Json
            self._raw_cursor = getattr(psycopg, "RawCursor", None)  # psycopg >= 3.2
        self.q: Callable[[str], str] = functools.lru_cache(maxsize=64)(
            (lambda sql: sql) if self.sqlite else (lambda sql: sql.replace("?", "%s"))
        )

    def insert(self, cur: Any, sql: str, rows: list[tuple[Any, ...]], *,
               sqlite_rows: int = 16) -> None:
        """Run `INSERT ... VALUES (?, ...) [tail]` for every row, as multi-row VALUES.

        PostgreSQL: a statement per up to ~30,000 parameters, because psycopg's `executemany`
        spends tens of µs of Python per row in its pipeline machinery. SQLite: statements of at
        most `sqlite_rows` rows (1 for rows with large values: the driver copies every bound
        value of a statement at once), because `executemany` releases and takes back the
        interpreter lock around every row's step, and on the group-commit writer each take-back
        waits for the busy event loop (up to the switch interval): at 50 sessions the writer
        spent 100-110 µs per message writing its rows, 53-67 µs as multi-row statements."""
        if not rows:
            return
        if self.sqlite:
            for start in range(0, len(rows), sqlite_rows):
                part = rows[start : start + sqlite_rows]
                if len(part) == 1:
                    cur.execute(sql, part[0])
                else:
                    cur.execute(_multi_row_qmark(sql, len(part)), [v for r in part for v in r])
            return
        if self._raw_cursor is None:
            cur.executemany(self.q(sql), rows)
            return
        raw = self._raw_cursor(cur.connection)  # $n placeholders: psycopg parses nothing
        try:
            per = max(1, _PG_MAX_PARAMS // len(rows[0]))
            for start in range(0, len(rows), per):
                part = rows[start : start + per]
                raw.execute(_multi_row(sql, len(part)), [v for r in part for v in r],
                            prepare=False)
        finally:
            raw.close()

    def in_list(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        """`column IN (...)` as SQL and parameters (an array parameter on PostgreSQL)."""
        if self.sqlite:
            return f"{column} IN ({','.join('?' * len(values))})", values
        return f"{column} = ANY(?)", [values]


_PG_MAX_PARAMS = 30_000


def _split_values(sql: str) -> tuple[str, str, str]:
    """'INSERT ... VALUES (?, 0) tail' as ('INSERT ...', '(?, 0', ' tail')."""
    head, _, rest = sql.partition(" VALUES ")
    row, _, tail = rest.partition(")")
    assert "(" not in row[1:], f"a VALUES row with parentheses cannot be repeated: {sql}"
    return head, row, tail


@functools.lru_cache(maxsize=256)
def _multi_row_qmark(sql: str, count: int) -> str:
    """'INSERT ... VALUES (?, 0) tail' for `count` rows: VALUES (?, 0), (?, 0) tail."""
    head, row, tail = _split_values(sql)
    return head + " VALUES " + ", ".join([row + ")"] * count) + tail


@functools.lru_cache(maxsize=256)
def _multi_row(sql: str, count: int) -> str:
    """'INSERT ... VALUES (?, 0) tail' for `count` rows, numbered: VALUES ($1, 0), ($2, 0)."""
    head, row, tail = _split_values(sql)
    pieces = row.split("?")
    width = len(pieces) - 1
    values = []
    for r in range(count):
        out = [pieces[0]]
        for i, piece in enumerate(pieces[1:], start=r * width + 1):
            out.append(f"${i}{piece}")
        values.append("".join(out) + ")")
    return head + " VALUES " + ", ".join(values) + tail


@functools.cache
def _binds(name: str) -> Binds:
    return Binds(name)


def for_dialect(dialect: Dialect) -> Binds:
    """The (cached) `Binds` of an engine's dialect."""
    return _binds(dialect.name)


def _ts_sqlite(value: datetime | None) -> str | None:
    """What `UTCDateTime` + SQLite DATETIME store: naive UTC with microseconds, as text."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _ts_pg(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
    return value


def ts_out(value: Any) -> datetime | None:
    """A stored time read by a raw cursor, as `UTCDateTime` would return it (aware UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def json_out(value: Any) -> Any:
    """A JSON column read by a raw cursor: text on SQLite, already parsed by psycopg."""
    if isinstance(value, str):
        return {} if value == "{}" else json.loads(value)
    return value


@contextmanager
def driver_errors(dialect: Dialect) -> Iterator[None]:
    """Re-raise the driver's exceptions as SQLAlchemy's (IntegrityError, OperationalError...)."""
    base = dialect.loaded_dbapi.Error
    try:
        yield
    except base as exc:
        raise sa_exc.DBAPIError.instance(None, None, exc, base, dialect=dialect) from exc


@contextmanager
def cursor(conn: Connection) -> Iterator[Any]:
    """A driver cursor inside `conn`'s transaction (from `Database.write()`)."""
    with driver_errors(conn.dialect):
        dbapi_conn = conn.connection.driver_connection
        assert dbapi_conn is not None
        cur = dbapi_conn.cursor()
        try:
            yield cur
        finally:
            cur.close()
