"""The migrations produce exactly schema.py, on both backends, and are safe to run concurrently."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from postroom.store import Store, StoreUnavailable
from postroom.store.engine import normalize_url
from postroom.store.migrate import alembic_config, head_revision
from postroom.store.schema import metadata
from support.databases import sqlite_url


def _diff(store: Store) -> list[object]:
    with store._db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_migrated_database_matches_schema(store: Store) -> None:
    assert _diff(store) == []
    assert store.schema_revision() == head_revision()


def test_upgrade_from_empty_concurrently_then_matches_schema(store_url: str) -> None:
    first = Store.open(store_url)
    with first._db.write() as conn:
        command.downgrade(alembic_config(conn), "base")
    names = set(inspect(first._db.engine).get_table_names()) - {"alembic_version"}
    assert names == set()
    assert first.schema_revision() is None
    first.close()

    stores = [Store(store_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda s: s.migrate(), stores))
        assert stores[0].schema_revision() == head_revision()
        assert _diff(stores[0]) == []
        stores[0].migrate()  # idempotent
        assert stores[0].schema_revision() == head_revision()
    finally:
        for s in stores:
            s.close()


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'queue.db'}"
    with Store.open(url) as store, store._db.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30_000
    assert (tmp_path / "nested" / "dir" / "queue.db").exists()
    # the delivery process's store: commits not fsync'd (lost ones only repeat a delivery)
    relaxed = Store(url, relaxed=True)
    try:
        with relaxed._db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        relaxed.close()


def test_sqlite_writes_take_the_lock_up_front(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: an open write transaction excludes other writers before it writes."""
    url = sqlite_url(tmp_path)
    with Store.open(url) as store:
        entered, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store._db.write():
                entered.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert entered.wait(10)
            other = sqlite3.connect(tmp_path / "postroom.db", timeout=0.1, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.execute("BEGIN")  # readers are not blocked (WAL)
            assert other.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
            other.execute("COMMIT")
            other.close()
        finally:
            release.set()
            holder.join()


def test_url_mapping() -> None:
    assert normalize_url("postgresql://u@h:5433/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x/y.db").drivername == "sqlite+pysqlite"
    for bad in ("sqlite://", "sqlite:///:memory:", "mysql://u@h/db"):
        with pytest.raises(ValueError):
            normalize_url(bad)


def test_unreachable_database_is_store_unavailable() -> None:
    store = Store("postgresql://postgres@127.0.0.1:1/nothing")
    try:
        with pytest.raises(StoreUnavailable):
            store.count_accounts()
        with pytest.raises(StoreUnavailable):
            store.ping()
    finally:
        store.close()
