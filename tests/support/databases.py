"""Real databases for tests: a fresh SQLite file, or a fresh PostgreSQL database per call.

    url = sqlite_url(tmp_path)          # sqlite:///<tmp_path>/postroom.db (not created yet)
    url = postgres_url_or_skip()        # postgresql://postgres@127.0.0.1:5432/postroom_t_...

PostgreSQL databases are cloned (`CREATE DATABASE ... TEMPLATE`) from a template that is
created and migrated to head once per test process, so each test gets an isolated, already
migrated database in tens of milliseconds instead of running the migrations again. Everything
this process created is dropped at exit (`WITH (FORCE)`, so a leaked connection cannot block
it); databases left behind by a killed run are dropped by the next run once their process is
gone and they are more than an hour old.

When the server does not answer, `postgres_url_or_skip()` calls `pytest.skip` with the reason,
so `-ra` output shows why PostgreSQL tests did not run. Override the admin connection with
POSTROOM_TEST_PG_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ADMIN_URL = os.environ.get(
    "POSTROOM_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_PREFIX = "postroom_t"
_NAME = re.compile(rf"^{_PREFIX}(?:pl)?_(\d+)_(\d+)_")
_STALE_AFTER = 3600

_lock = threading.Lock()
_counter = itertools.count()
_state: dict[str, str | None] = {"template": None, "skip": None}
_created: list[str] = []


def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL for a file inside `tmp_path` (the store creates it and its directory)."""
    return f"sqlite:///{Path(tmp_path) / 'postroom.db'}"


def postgres_url_or_skip() -> str:
    """A new, empty-but-migrated PostgreSQL database; skips the test if PostgreSQL is down."""
    template = _template_or_skip()
    name = _new_name(_PREFIX)
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    _created.append(name)
    return database_url(name)


def database_url(name: str) -> str:
    """ADMIN_URL with its database replaced by `name`."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(url: str) -> None:
    """Drop a database made by `postgres_url_or_skip` now (otherwise it goes at exit)."""
    name = urlsplit(url).path.lstrip("/")
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if name in _created:
        _created.remove(name)


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)


def _new_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{int(time.time())}_{next(_counter)}"


def _template_or_skip() -> str:
    with _lock:
        if _state["skip"]:
            pytest.skip(_state["skip"])
        if _state["template"]:
            return _state["template"]
        try:
            with _admin() as conn:
                _drop_stale(conn)
        except psycopg.OperationalError as exc:
            reason = f"PostgreSQL not reachable at {_where()}: {str(exc).strip().splitlines()[0]}"
            _state["skip"] = reason
            pytest.skip(reason)
        name = _new_name(_PREFIX + "pl")
        with _admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        _created.append(name)
        atexit.register(_drop_all)
        from postroom.store import Store  # imported late: only PostgreSQL tests pay for it

        Store.open(database_url(name)).close()  # migrate once; closing frees the template
        _state["template"] = name
        return name


def _where() -> str:
    parts = urlsplit(ADMIN_URL)
    return f"{parts.hostname}:{parts.port or 5432}"


def _drop_stale(conn: psycopg.Connection) -> None:
    """Drop databases from earlier runs whose process is gone (and that are old)."""
    names = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{_PREFIX}%",)
    ).fetchall()
    now = time.time()
    for (name,) in names:
        match = _NAME.match(name)
        if not match:
            continue
        pid, created = int(match.group(1)), int(match.group(2))
        if now - created < _STALE_AFTER or _alive(pid):
            continue
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_all() -> None:
    try:
        with _admin() as conn:
            for name in reversed(_created):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass  # the server went away first; the next run's _drop_stale cleans up
    _created.clear()
