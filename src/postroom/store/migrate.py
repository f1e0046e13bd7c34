"""Running the Alembic migrations shipped inside the package (no alembic.ini at runtime).

`migrate()` holds a write transaction for the whole upgrade, so several processes starting at
once serialize: on SQLite through `BEGIN IMMEDIATE`, on PostgreSQL through a transaction-level
advisory lock. The loser of the race then finds the schema already at head and does nothing.
PostgreSQL and SQLite both have transactional DDL, so a failed upgrade leaves no half-schema.

On SQLite the upgrade runs with foreign keys off: Alembic's batch mode rebuilds a table
(copy, DROP, rename), and with `foreign_keys=ON` dropping a table that other rows refer to
fails. The PRAGMA is a no-op inside a transaction, so it is issued before BEGIN and restored
after the commit; `PRAGMA foreign_key_check` runs before the commit, and any dangling
reference found makes the upgrade fail (and roll back) instead of being committed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text

from postroom.store.engine import _WRITE, Database
from postroom.store.errors import InvalidData, StoreError, translated

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Arbitrary constant naming the advisory lock ("postroom" in ASCII, truncated to 63 bits).
_PG_LOCK_KEY = 0x706F7374726F6F6D


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code; `connection` is handed to env.py if given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(db: Database, revision: str = "head") -> None:
    """Upgrade the database to `revision` (default: the newest). Raises StoreError (a
    subclass when the database itself failed) when it cannot: e.g. a database at a revision
    this version does not know (upgraded by a newer Postroom)."""
    try:
        if db.is_sqlite:
            _migrate_sqlite(db, revision)
            return
        with db.write() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            command.upgrade(alembic_config(conn), revision)
    except CommandError as exc:
        raise StoreError(f"cannot upgrade the store: {exc}") from exc


def _migrate_sqlite(db: Database, revision: str) -> None:
    with translated(), db.writing(), db.engine.connect() as conn:
        raw = conn.connection.driver_connection  # autocommit mode: see engine._sqlite_connect
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")  # before BEGIN: it is ignored inside one
        try:
            conn.execution_options(**{_WRITE: True})  # BEGIN IMMEDIATE, as db.write()
            with conn.begin():
                command.upgrade(alembic_config(conn), revision)
                dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if dangling:
                    shown = ", ".join(f"{row[0]} row {row[1]} -> {row[2]}" for row in dangling[:5])
                    raise InvalidData(
                        f"migration to {revision} left {len(dangling)} row(s) referring to "
                        f"missing rows ({shown}); the upgrade was rolled back")
        finally:
            try:
                raw.execute("PRAGMA foreign_keys=ON")
            except Exception:
                conn.invalidate()  # never hand a connection without foreign keys to the pool
                raise
