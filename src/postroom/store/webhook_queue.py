"""Webhook dispatch: from the event log to durable deliveries, exactly once.

Dispatch reads a window of the event log past the cursor (read transaction), lets the caller
plan deliveries from it without holding any lock, then writes the deliveries and moves the
cursor in ONE write transaction guarded by a version check: two dispatchers (processes, nodes)
can never both turn the same events into deliveries, and a crash between the two steps loses
nothing (the cursor did not move). Event ids are commit order on SQLite, but on PostgreSQL a
transaction can commit an id below one already seen; such holes are kept in `gaps` and looked
at again until GAP_GRACE_SECONDS have passed (a rolled-back insert leaves one forever).

The rows written, and the checks that drop what cannot be kept, are in `webhook_rows`;
sending them (leases, attempts) is `webhook_leases`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from postroom.model.records import Event, MessageRecord
from postroom.model.webhooks import NewDelivery, Webhook
from postroom.store import fastsql, rows
from postroom.store.engine import Database
from postroom.store.reads import _MESSAGE_COLUMNS
from postroom.store.schema import events, messages, webhook_cursor
from postroom.store.webhook_rows import CHUNK, in_chunks, insert_deliveries, storable
from postroom.store.webhooks import ensure_account_secrets, webhooks_of

CURSOR = "events"
GAP_GRACE_SECONDS = 120.0
MAX_GAPS = 10_000


@dataclass(frozen=True, slots=True)
class Window:
    """What a planner sees: new events, their messages and the accounts' live webhooks."""

    events: list[Event]
    messages: dict[str, MessageRecord]
    webhooks: dict[str, list[Webhook]]


Planner = Callable[[Window], Sequence[NewDelivery]]


def _cursor(db: Database) -> tuple[int, list[list[float]], int]:
    query = select(webhook_cursor).where(webhook_cursor.c.name == CURSOR)
    with db.read() as conn:
        row = conn.execute(query).first()
    if row is None:  # the migration makes it; a wiped table starts at the log's end
        with db.write(blocking=True) as conn:  # background: see write_lock.py
            top = conn.execute(select(func.max(events.c.id))).scalar() or 0
            conn.execute(db.insert(webhook_cursor).values(
                name=CURSOR, position=top, gaps=[], version=0, updated_at=rows.utc_now(),
            ).on_conflict_do_nothing(index_elements=["name"]))
            row = conn.execute(query).one()
    return int(row.position), list(row.gaps or []), int(row.version)


#: The event log past the cursor, each event with what decides whether it is worth reading in
#: full: its message's account and whether the message has options (a notify or tracking URL
#: lives there). NULL account: no message, or the message is gone.
_WINDOW = (
    "SELECT e.id, e.message_id, m.account_id, CAST(m.options AS TEXT) = '{}' FROM events e"
    " LEFT JOIN messages m ON m.id = e.message_id WHERE "
)


def dispatch(db: Database, plan: Planner, *, limit: int, give_up_after: float) -> int:
    """Turn up to `limit` new events into deliveries; returns how many events were read
    (0 also when another dispatcher moved the cursor first: just call again)."""
    position, gaps, version = _cursor(db)
    b = fastsql.for_dialect(db.engine.dialect)
    with db.read() as conn:
        with fastsql.cursor(conn) as cur:
            cur.execute(b.q(_WINDOW + "e.id > ? ORDER BY e.id LIMIT ?"), (position, limit))
            window = cur.fetchall()
            gap_ids = [int(g[0]) for g in gaps]
            for start in range(0, len(gap_ids), CHUNK):
                where, params = b.in_list("e.id", gap_ids[start:start + CHUNK])
                cur.execute(b.q(_WINDOW + where), params)
                window += cur.fetchall()
        hooks = _live_webhooks(conn, {account for _, _, account, _ in window if account})
        wanted = _worth_reading(window, hooks)
        seen = sorted((rows.event(r._mapping) for r in in_chunks(
            conn, lambda ids: select(events).where(events.c.id.in_(ids)), wanted)),
            key=lambda e: e.id)
        ids = sorted({e.message_id for e in seen if e.message_id})
        found = {r.id: rows.message(r._mapping, ()) for r in in_chunks(
            conn, lambda part: select(*_MESSAGE_COLUMNS).where(messages.c.id.in_(part)), ids)}
        more = {str(e.data["account_id"]) for e in seen if e.data.get("account_id")} - set(hooks)
        hooks.update(_live_webhooks(conn, more))
    if not window and not gaps:
        return 0
    planned = list(plan(Window(seen, found, hooks))) if seen else []
    fresh_ids = [r[0] for r in window if r[0] > position]
    top = max(fresh_ids) if fresh_ids else position
    now_s = time.time()
    done = {r[0] for r in window}
    kept = [g for g in gaps if int(g[0]) not in done and now_s - g[1] < GAP_GRACE_SECONDS]
    kept += [[i, now_s] for i in range(position + 1, top + 1) if i not in done]
    kept = kept[-MAX_GAPS:]
    now = rows.utc_now()
    with db.write(blocking=True) as conn:  # background: see write_lock.py
        moved = conn.execute(update(webhook_cursor).where(
            webhook_cursor.c.name == CURSOR, webhook_cursor.c.version == version,
        ).values(position=top, gaps=kept, version=version + 1, updated_at=now)).rowcount
        if moved != 1:
            return 0
        signed_by_account = [d.account_id for d in planned if d.webhook_id is None]
        ensure_account_secrets(db, conn, signed_by_account)
        insert_deliveries(conn, storable(planned, now, give_up_after))
    return len(window)


def _live_webhooks(conn: Any, accounts: set[str]) -> dict[str, list[Webhook]]:
    return webhooks_of(conn, accounts) if accounts else {}


def _worth_reading(window: Sequence[Any], hooks: dict[str, list[Webhook]]) -> list[int]:
    """The ids of the events in `window` (rows of `_WINDOW`) that may cause a delivery: those
    of accounts with a live webhook (`hooks`), of messages with options and those without a
    message. Why: most mail has neither, and reading and planning every event in full cost the
    webhook process a third of a core at 1,000 messages a second."""
    return [event_id for event_id, message_id, account, plain in window
            if not message_id or account is None or not plain or hooks.get(account)]
