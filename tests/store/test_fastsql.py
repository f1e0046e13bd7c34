"""The hand-written hot-path statements store exactly what SQLAlchemy would (fastsql.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select

from postroom.model import Account
from postroom.store import Store, fastsql
from postroom.store.fastsql import INSERT_EVENT
from postroom.store.schema import events

from .factories import make_message

AT = datetime(2031, 2, 3, 4, 5, 6, 789, tzinfo=timezone(timedelta(hours=2)))
DATA = {"b": [1, "é"], "a": None, "nested": {"x": 1.5}}


def _stored(store: Store, event_id: int) -> tuple[object, ...]:
    """The raw stored text of `at` and `data`, as the database keeps them."""
    with store._db.read() as conn:
        if store.dialect == "sqlite":
            sql = "SELECT at, typeof(at), data, typeof(data) FROM events WHERE id = ?"
            return tuple(conn.exec_driver_sql(sql, (event_id,)).one())
        sql = "SELECT at::text, data::text FROM events WHERE id = %s"
        return tuple(conn.exec_driver_sql(sql, (event_id,)).one())


def test_fast_insert_stores_what_sqlalchemy_stores(store: Store) -> None:
    row = ("opened", "m1", "a@example.com", AT, 1, "mx", "250 ok", DATA)
    with store._db.write() as conn:
        core_id = conn.execute(events.insert().values(
            type=row[0], message_id=row[1], recipient=row[2], at=AT, attempt=1,
            remote_host="mx", reply="250 ok", data=DATA,
        )).inserted_primary_key[0]
        b = fastsql.for_dialect(conn.dialect)
        with fastsql.cursor(conn) as cur:
            b.insert(cur, INSERT_EVENT, [(*row[:3], b.ts(AT), *row[4:7], b.json(DATA))])
        fast_id = conn.execute(select(events.c.id).order_by(events.c.id.desc())).scalar()
    assert fast_id != core_id
    assert _stored(store, fast_id) == _stored(store, core_id)
    with store._db.read() as conn:
        read = conn.execute(select(events.c.at, events.c.data).where(events.c.id == fast_id))
        at, data = read.one()
    assert at == AT and at.tzinfo == UTC and data == DATA


def test_times_read_back_like_utcdatetime(store: Store, account: Account) -> None:
    message = make_message(account.id)
    asyncio.run(store.enqueue(message))
    record = store.get_message(message.id)
    assert record is not None
    with store._db.read() as conn, fastsql.cursor(conn) as cur:
        cur.execute(fastsql.for_dialect(conn.dialect).q(
            "SELECT created_at FROM messages WHERE id = ?"), (message.id,))
        (raw,) = cur.fetchone()
    assert fastsql.ts_out(raw) == record.created_at
    assert fastsql.ts_out(raw).tzinfo == UTC


def test_many_rows_are_split_into_several_statements(store: Store) -> None:
    count = 4000  # more than one PostgreSQL statement's worth of 8-column rows
    with store._db.write() as conn:
        b = fastsql.for_dialect(conn.dialect)
        rows = [("queued", f"m{i}", None, b.ts(AT), None, None, None, b.json({}))
                for i in range(count)]
        with fastsql.cursor(conn) as cur:
            b.insert(cur, INSERT_EVENT, rows)
            b.insert(cur, INSERT_EVENT, rows[:37], sqlite_rows=5)  # SQLite: 7 full, 1 of 2
            b.insert(cur, INSERT_EVENT, rows[:1])
    with store._db.read() as conn, fastsql.cursor(conn) as cur:
        cur.execute("SELECT message_id FROM events ORDER BY id")
        stored = [m for (m,) in cur.fetchall()]
    expected = [r[1] for r in rows]
    assert stored == expected + expected[:37] + expected[:1]


def test_naive_times_are_refused() -> None:
    for name in ("sqlite", "postgresql"):
        b = fastsql.Binds(name)
        try:
            b.ts(datetime(2030, 1, 1))
        except ValueError as exc:
            assert "naive" in str(exc)
        else:
            raise AssertionError(f"{name}: naive datetime accepted")
