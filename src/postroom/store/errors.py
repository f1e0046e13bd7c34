"""What the store raises, and the one place where driver errors are translated.

Callers never see SQLAlchemy, sqlite3 or psycopg exceptions; they see this tree::

    StoreError                    anything the store could not do
    ├── StoreUnavailable          the database cannot be used right now (connection refused,
    │                             lock wait timed out, I/O error, any unexpected DB error);
    │                             transient from the caller's point of view: SMTP 451 4.3.0
    ├── StorageFull               the disk (or the SQLite size cap) is full: SMTP 452 4.3.1
    ├── AlreadyExists             a unique key is taken (account name, key hash, message id)
    ├── NotFound                  a row referred to does not exist (e.g. a key for an
    │                             unknown account)
    └── InvalidData               the database rejected the values themselves (a value too
                                  long for its column, NULL where one is required)

`StorageFull` is deliberately a sibling of `StoreUnavailable`, not a child, so that an
`except StoreUnavailable` written before `except StorageFull` cannot swallow it. Integrity
problems get their own classes (instead of being lumped into `StoreUnavailable`) because
retrying them can never succeed - an SMTP client told 451 would retry the same message
forever; callers that do not care catch `StoreError`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc


class StoreError(Exception):
    """Base class of everything the store raises on purpose."""


class StoreUnavailable(StoreError):
    """The database cannot be used right now; retrying later may work."""


class StorageFull(StoreError):
    """No space left for the write (ENOSPC, SQLITE_FULL, PostgreSQL disk_full)."""


class AlreadyExists(StoreError):
    """A unique constraint rejected the write."""


class NotFound(StoreError):
    """A referenced row does not exist (foreign key rejected the write)."""


class InvalidData(StoreError):
    """The values do not fit the schema (too long, missing); retrying cannot help."""


class BatchTooLarge(InvalidData):
    """More messages at once than one commit takes (the writer process's frame limit): the
    caller must send fewer at a time; a retry of the same request cannot succeed."""


_SQLITE_FULL_TEXT = "database or disk is full"
_PG_DISK_FULL = "53100"
_PG_UNIQUE = "23505"
_PG_FOREIGN_KEY = "23503"


def _is_disk_full(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if _SQLITE_FULL_TEXT in str(current):
            return True
        if getattr(current, "sqlstate", None) == _PG_DISK_FULL:
            return True
        current = current.__cause__ or current.__context__
    return False


def translate(exc: BaseException) -> StoreError:
    """Map a driver/SQLAlchemy/OS exception to the store's tree (the original is the cause)."""
    if isinstance(exc, StoreError):
        return exc
    if _is_disk_full(exc):
        return StorageFull(f"storage full: {_short(exc)}")
    if isinstance(exc, sa_exc.IntegrityError):
        orig = exc.orig
        sqlstate = getattr(orig, "sqlstate", None)
        text = str(orig)
        if sqlstate == _PG_FOREIGN_KEY or "FOREIGN KEY constraint failed" in text:
            return NotFound(f"referenced row does not exist: {_short(exc)}")
        if sqlstate == _PG_UNIQUE or "UNIQUE constraint failed" in text:
            return AlreadyExists(f"already exists: {_short(exc)}")
        return InvalidData(f"rejected by the database: {_short(exc)}")
    if isinstance(exc, sa_exc.DataError):
        return InvalidData(f"rejected by the database: {_short(exc)}")
    return StoreUnavailable(f"store unavailable: {_short(exc)}")


@contextmanager
def translated() -> Iterator[None]:
    """Run a block and re-raise DB-level failures as StoreError subclasses."""
    try:
        yield
    except StoreError:
        raise
    except sa_exc.StatementError as exc:
        if not isinstance(exc, sa_exc.DBAPIError) and isinstance(exc.orig, ValueError | TypeError):
            raise exc.orig from exc  # a programming error (e.g. a naive datetime), not the DB
        raise translate(exc) from exc
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        raise translate(exc) from exc


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
