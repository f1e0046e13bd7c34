"""Running the Alembic migrations shipped inside the package (no alembic.ini at runtime).

`migrate()` holds a write transaction for the whole upgrade, so several processes starting at
once serialize: on SQLite through `BEGIN IMMEDIATE`, on PostgreSQL through a transaction-level
advisory lock. The loser of the race then finds the schema already at head and does nothing.
PostgreSQL and SQLite both have transactional DDL, so a failed upgrade leaves no half-schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from postroom.store.engine import Database

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
    """Upgrade the database to `revision` (default: the newest)."""
    with db.write() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        command.upgrade(alembic_config(conn), revision)
