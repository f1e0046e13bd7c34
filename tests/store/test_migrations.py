"""The migrations produce exactly schema.py, on both backends, and are safe to run concurrently."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from postroom.store import Store, StoreUnavailable
from postroom.store.engine import normalize_url
from postroom.store.errors import InvalidData, NotFound
from postroom.store.migrate import alembic_config, head_revision, migrate
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


def _store_at(store_url: str, revision: str) -> Store:
    """A store whose schema is at `revision` (the PostgreSQL fixture comes migrated: go down)."""
    store = Store(store_url)
    if store.schema_revision() is not None:
        with store._db.write() as conn:
            command.downgrade(alembic_config(conn), "base")
    migrate(store._db, revision)
    assert store.schema_revision() == revision
    return store


def _insert_0004_rows(conn: Connection, *, account_id: str = "A" * 26) -> None:
    """An account with an API key and a message with a recipient, as a 0004 schema has them."""
    when = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    json_ = sa.JSON()
    accounts = sa.table("accounts", *(sa.column(n) for n in ("id", "name", "created_at")),
                        *(sa.column(n, json_) for n in ("sender_domains", "sender_addresses",
                                                        "allow_ips", "trusted_networks")))
    conn.execute(accounts.insert().values(
        id="A" * 26, name="acme", sender_domains=["acme.test"], sender_addresses=[],
        allow_ips=[], trusted_networks=[], created_at=when))
    keys = sa.table("api_keys", *(sa.column(n) for n in ("id", "account_id", "key_hash",
                                                         "prefix", "created_at")),
                    sa.column("scopes", json_))
    conn.execute(keys.insert().values(id="K" * 26, account_id=account_id, key_hash="h1",
                                      prefix="p1", scopes=["send"], created_at=when))
    messages = sa.table("messages", *(sa.column(n) for n in (
        "id", "account_id", "mail_from", "header_from", "subject", "message_id_header", "size",
        "source", "client_ip", "created_at")), sa.column("raw", sa.LargeBinary()),
                        sa.column("options", json_))
    conn.execute(messages.insert().values(
        id="M" * 26, account_id="A" * 26, mail_from="s@acme.test", header_from="s@acme.test",
        subject="s", message_id_header="<m@acme.test>", size=3, raw=b"abc", source="smtp",
        client_ip="127.0.0.1", options={}, created_at=when))
    recipients = sa.table("recipients", *(sa.column(n) for n in (
        "message_id", "address", "domain", "status", "attempts", "updated_at")))
    conn.execute(recipients.insert().values(
        message_id="M" * 26, address="r@example.com", domain="example.com", status="queued",
        attempts=0, updated_at=when))


def test_upgrade_from_0004_with_accounts_keys_and_messages(store_url: str) -> None:
    """Batch mode rebuilds `accounts` on SQLite (DROP TABLE with api_keys referring to it):
    the upgrade must not trip over the foreign keys, and must keep every row."""
    old = _store_at(store_url, "0004")
    with old._db.write() as conn:
        _insert_0004_rows(conn)
    old.close()

    with Store.open(store_url) as store:
        assert store.schema_revision() == head_revision()
        assert _diff(store) == []
        account = store.get_account("acme")
        assert account is not None and list(account.sender_domains) == ["acme.test"]
        key = store.find_api_key("h1")
        assert key is not None and key[0].account_id == key[1].id == "A" * 26
        message = store.get_message("M" * 26)
        assert message is not None and [r.address for r in message.recipients] == [
            "r@example.com"]
        assert store.get_raw("M" * 26) == b"abc"
        if store.dialect == "sqlite":  # foreign keys are back on for the pooled connections
            with store._db.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            with pytest.raises(NotFound):
                store.create_api_key("Z" * 26, key_hash="h2", prefix="p2", scopes=["send"])


def test_sqlite_upgrade_refuses_dangling_references(tmp_path: Path) -> None:
    """Foreign keys are off during a SQLite upgrade; a row referring to nothing is found by
    `PRAGMA foreign_key_check` and the upgrade is rolled back instead of committed."""
    url = sqlite_url(tmp_path)
    old = _store_at(url, "0004")
    with old._db.engine.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        with conn.begin():
            _insert_0004_rows(conn, account_id="Z" * 26)
        conn.invalidate()
    with pytest.raises(InvalidData, match="api_keys"):
        migrate(old._db)
    assert old.schema_revision() == "0004"
    with old._db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    old.close()
