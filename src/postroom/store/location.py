"""Where a store URL points on disk, without opening it (the CLI asks before `Store.open`,
which would create a missing SQLite file and its directory)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["sqlite_file"]


def sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite URL's database file (a relative path is taken against the
    working directory, as SQLite does); None for other backends, in-memory or malformed URLs
    (`Store.open` reports those itself)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()
