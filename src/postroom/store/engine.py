"""Engines and transactions: the dialect-specific plumbing, kept out of every query module.

`Database.read()` and `Database.write()` are the only ways the store touches a connection,
besides `KeptConnection` (the group-commit writer's own). All translate driver errors into
`store.errors`. On SQLite, `write()` starts the transaction
with `BEGIN IMMEDIATE`: the write lock is taken up front, so two processes sharing the file
queue on `busy_timeout` instead of failing with SQLITE_BUSY when a read transaction tries to
upgrade to a write one (which SQLite cannot wait for). Reads use a plain deferred `BEGIN`,
which in WAL mode never blocks on writers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from postroom.store.errors import translated
from postroom.store.fastsql import driver_errors
from postroom.store.write_lock import WriteLock

BUSY_TIMEOUT_MS = 30_000
#: A kept PostgreSQL connection idle longer than this is pinged before use (as pool_pre_ping
#: would): the server may have been restarted or the connection cut meanwhile.
PING_AFTER_IDLE_S = 1.0
_WRITE = "postroom_write"

#: PRAGMAs run on every new SQLite connection. busy_timeout comes first so that switching to
#: WAL waits for a concurrent process instead of failing. synchronous=FULL fsyncs the WAL on
#: every commit: an acknowledged message survives power loss, which is the point of the queue.
SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)


def normalize_url(url: str | URL) -> URL:
    """Map configuration URLs to SQLAlchemy ones: postgresql:// uses psycopg 3."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:") or (parsed.database or "").startswith(
            "file::memory:"
        ):
            raise ValueError("in-memory SQLite is not supported: the queue must be durable")
        return parsed.set(drivername="sqlite+pysqlite")
    raise ValueError(f"unsupported store URL {parsed.render_as_string()!r}: "
                     "use sqlite:///PATH or postgresql://user@host:port/db")


def _sqlite_connect(dbapi_connection: Any, _record: Any, *, relaxed: bool = False) -> None:
    # Take transaction control away from the sqlite3 module; `_sqlite_begin` issues BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        if relaxed:  # see make_engine
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | URL, *, relaxed: bool = False) -> Engine:
    """Create a pooled engine with the settings the store relies on.

    `relaxed` (SQLite only): commits are not fsync'd (WAL with synchronous=NORMAL; they survive
    a crash of the process, not of the machine, until the next fsync'd commit or checkpoint).
    For the delivery and webhook processes, whose writes (leases, outcomes, the event cursor,
    attempts) only ever cause a repeated delivery or POST if lost, never the loss of accepted
    mail; they then hold SQLite's one write lock, which the ingress needs, far shorter.
    """
    sa_url = normalize_url(url)
    if sa_url.get_backend_name() == "sqlite":
        path = Path(sa_url.database or "").expanduser()
        path.resolve().parent.mkdir(parents=True, exist_ok=True)
        sa_url = sa_url.set(database=str(path))
        engine = create_engine(
            sa_url,
            pool_size=8,
            max_overflow=32,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", functools.partial(_sqlite_connect, relaxed=relaxed))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        sa_url,
        pool_size=8,
        max_overflow=32,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10},
    )


class Database:
    """One engine plus read/write transaction helpers; thread-safe (the pool is)."""

    def __init__(self, url: str | URL, *, relaxed: bool = False) -> None:
        self.engine = make_engine(url, relaxed=relaxed)
        self.dialect: str = self.engine.dialect.name
        #: SQLite: every write transaction of every Postroom process queues here first
        self.write_lock = (
            WriteLock(Path(f"{Path(self.engine.url.database or '').resolve()}-writer.lock"),
                      timeout=BUSY_TIMEOUT_MS / 1000)
            if self.is_sqlite else None)

    def writing(self, *, blocking: bool = False) -> AbstractContextManager[None]:
        """Hold the store's write lock (SQLite; nothing on PostgreSQL) around a transaction;
        `blocking` for the hot paths only (see write_lock.py)."""
        if self.write_lock is None:
            return nullcontext()
        return self.write_lock.held(blocking=blocking)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (deferred BEGIN on SQLite)."""
        with translated(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, *, blocking: bool = False) -> Iterator[Connection]:
        """A write transaction, committed on normal exit (BEGIN IMMEDIATE on SQLite).
        `blocking`: wait for another process's write without a deadline (hot paths only)."""
        with translated(), self.writing(blocking=blocking), self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def insert(self, table: Table) -> Any:
        """A dialect-specific INSERT that supports `on_conflict_do_*` on both backends."""
        if self.is_sqlite:
            return sqlite_dialect.insert(table)
        return pg_dialect.insert(table)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_lock is not None:
            self.write_lock.close()


class KeptConnection:
    """One DBAPI connection kept by one thread across transactions (the group-commit writer).

    Why: a pool checkout per commit (with a ping on PostgreSQL) and SQLAlchemy's transaction
    bookkeeping cost more CPU than the commit itself. The connection is dropped, and a new one
    taken at the next transaction, when a transaction fails for any reason but the data (a
    duplicate key, a value that does not fit), and when the engine was disposed meanwhile
    (so new connect-time settings apply). Not thread-safe: one owner thread only.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._proxy: Any = None
        self._pool: Any = None
        self._last_used = 0.0

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A driver cursor in a write transaction, committed on normal exit."""
        dialect = self._db.engine.dialect
        with translated(), self._db.writing(blocking=True), driver_errors(dialect):
            conn = self._connection()
            cur = conn.cursor()
            try:
                if self._db.is_sqlite:
                    cur.execute("BEGIN IMMEDIATE")
                yield cur
                conn.commit()
            except BaseException as exc:
                self._failed(conn, exc)
                raise
            finally:
                self._last_used = time.monotonic()
                with suppress(Exception):
                    cur.close()

    def close(self, *, invalidate: bool = False) -> None:
        """Hand the connection back to the pool (which rolls back anything open), or with
        `invalidate` discard it (it is broken or in doubt)."""
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            with suppress(Exception):
                proxy.invalidate() if invalidate else proxy.close()

    def _connection(self) -> Any:
        pool = self._db.engine.pool
        if self._proxy is not None and self._pool is not pool:
            self.close(invalidate=True)  # the engine was disposed: reconnect anew
        if (self._proxy is not None and not self._db.is_sqlite
                and time.monotonic() - self._last_used > PING_AFTER_IDLE_S):
            try:
                self._proxy.driver_connection.execute("SELECT 1")
                self._proxy.driver_connection.rollback()
            except Exception:
                self.close(invalidate=True)
        if self._proxy is None:
            self._proxy = self._db.engine.raw_connection()
            self._pool = pool
        return self._proxy.driver_connection

    def _failed(self, conn: Any, exc: BaseException) -> None:
        dbapi = self._db.engine.dialect.loaded_dbapi
        data_fault = isinstance(exc, ValueError | TypeError | dbapi.IntegrityError | dbapi.DataError)
        try:
            conn.rollback()
        except Exception:
            data_fault = False
        if not data_fault:
            self.close(invalidate=True)
