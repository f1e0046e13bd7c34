"""Webhook deliveries as durable work: the dispatch cursor, leases, attempts, history.

Dispatch reads a window of the event log past the cursor (read transaction), lets the caller
plan deliveries from it without holding any lock, then writes the deliveries and moves the
cursor in ONE write transaction guarded by a version check: two dispatchers (processes, nodes)
can never both turn the same events into deliveries, and a crash between the two steps loses
nothing (the cursor did not move). Event ids are commit order on SQLite, but on PostgreSQL a
transaction can commit an id below one already seen; such holes are kept in `gaps` and looked
at again until GAP_GRACE_SECONDS have passed (a rolled-back insert leaves one forever).

Leases work as in `claim.py`: FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import String, func, or_, select, update
from sqlalchemy.exc import DataError

from postroom.model.ids import new_id
from postroom.model.records import Event, MessageRecord
from postroom.model.webhooks import (
    AttemptOutcome,
    DeliveryJob,
    DeliveryKind,
    DeliveryStatus,
    NewDelivery,
    Webhook,
)
from postroom.store import fastsql, rows
from postroom.store.delivery import _aware
from postroom.store.engine import Database
from postroom.store.reads import _MESSAGE_COLUMNS
from postroom.store.schema import (
    events,
    messages,
    webhook_account_secrets,
    webhook_attempts,
    webhook_cursor,
    webhook_deliveries,
    webhooks,
)
from postroom.store.webhooks import ensure_account_secrets, signing_secrets, webhooks_of

log = logging.getLogger("postroom.events")
CURSOR = "events"
GAP_GRACE_SECONDS = 120.0
MAX_GAPS = 10_000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Window:
    """What a planner sees: new events, their messages and the accounts' live webhooks."""

    events: list[Event]
    messages: dict[str, MessageRecord]
    webhooks: dict[str, list[Webhook]]


Planner = Callable[[Window], Sequence[NewDelivery]]


def endpoint_of(url: str) -> str:
    """scheme://host:port: deliveries to one server share its concurrency and back-off."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _in_chunks(conn: Any, make: Callable[[list[Any]], Any], keys: Sequence[Any]) -> list[Any]:
    found: list[Any] = []
    for start in range(0, len(keys), _CHUNK):
        found += conn.execute(make(list(keys[start:start + _CHUNK]))).all()
    return found


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
            for start in range(0, len(gap_ids), _CHUNK):
                where, params = b.in_list("e.id", gap_ids[start:start + _CHUNK])
                cur.execute(b.q(_WINDOW + where), params)
                window += cur.fetchall()
        hooks = _live_webhooks(conn, {account for _, _, account, _ in window if account})
        wanted = _worth_reading(window, hooks)
        seen = sorted((rows.event(r._mapping) for r in _in_chunks(
            conn, lambda ids: select(events).where(events.c.id.in_(ids)), wanted)),
            key=lambda e: e.id)
        ids = sorted({e.message_id for e in seen if e.message_id})
        found = {r.id: rows.message(r._mapping, ()) for r in _in_chunks(
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
        _insert_deliveries(conn, _storable(planned, now, give_up_after))
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


def _storable(planned: Sequence[NewDelivery], now: datetime, give_up_after: float
              ) -> list[dict[str, Any]]:
    """The rows of the `planned` deliveries the database can keep; any other is dropped with a
    log line. Why: they are written with the cursor's move, so one the database refuses (a
    URL longer than its column, a port that does not parse) would stop dispatch for everyone,
    for ever. The doors refuse such URLs; this covers what was stored before they did."""
    found = []
    for d in planned:
        try:
            endpoint = endpoint_of(d.url)
        except ValueError as exc:
            _drop(DeliveryKind(d.kind).value, d.account_id, d.url, str(exc))
            continue
        row = _delivery_row(d, endpoint, now, give_up_after)
        problem = _unfit(row)
        if problem:
            _drop(row["kind"], d.account_id, d.url, problem)
        else:
            found.append(row)
    return found


def _unfit(row: dict[str, Any]) -> str | None:
    """Why a text value of `row` cannot be stored: longer than its column, a NUL character
    (PostgreSQL refuses it) or a lone surrogate (not encodable)."""
    for column in webhook_deliveries.columns:
        value = row.get(column.name)
        if not isinstance(value, str):
            continue
        limit = column.type.length if isinstance(column.type, String) else None
        if limit and len(value) > limit:
            return f"its {column.name} is longer than {limit} characters"
        if "\x00" in value or not (value.isascii() or _encodable(value)):
            return f"its {column.name} holds a NUL or an unencodable character"
    return None


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _drop(kind: str, account_id: str, url: str, problem: str) -> None:
    log.warning("webhooks: a %s delivery of account %s to %.200r was dropped: %s",
                kind, account_id, url, problem)


def _insert_deliveries(conn: Any, found: list[dict[str, Any]]) -> None:
    """Insert `found`; should the database refuse the values of some anyway, insert them one
    by one (a savepoint each) and drop those it refuses: the cursor must move regardless."""
    if not found:
        return
    try:
        with conn.begin_nested():
            conn.execute(webhook_deliveries.insert(), found)
        return
    except DataError:
        pass
    for row in found:
        try:
            with conn.begin_nested():
                conn.execute(webhook_deliveries.insert(), [row])
        except DataError as exc:
            _drop(row["kind"], row["account_id"], row["url"], str(exc).splitlines()[0][:300])


def _delivery_row(d: NewDelivery, endpoint: str, now: datetime, give_up_after: float
                  ) -> dict[str, Any]:
    return {
        "id": new_id(), "account_id": d.account_id, "webhook_id": d.webhook_id,
        "kind": DeliveryKind(d.kind).value, "url": d.url, "endpoint": endpoint,
        "content_type": d.content_type, "body": d.body, "event_ids": list(d.event_ids),
        "status": DeliveryStatus.PENDING.value, "attempts": 0, "next_attempt_at": now,
        "give_up_at": now + timedelta(seconds=give_up_after), "lease_owner": None,
        "lease_until": None, "last_status_code": None, "last_error": None,
        "created_at": now, "updated_at": now,
    }


def _unlimited(_: str) -> int:
    return 1 << 30


def claim(db: Database, owner: str, *, now: datetime, limit: int, lease_seconds: float,
          skip: Collection[str] = (), room: Callable[[str], int] = _unlimited
          ) -> list[DeliveryJob]:
    """Lease up to `limit` due deliveries, leaving out endpoints in `skip` and taking at most
    `room(endpoint)` for each other one (so one slow endpoint cannot fill a batch)."""
    return [job for _, job in claim_by_account(db, owner, now=now, limit=limit,
                                               lease_seconds=lease_seconds, skip=skip,
                                               room=room)]


def claim_by_account(db: Database, owner: str, *, now: datetime, limit: int,
                     lease_seconds: float, skip: Collection[str] = (),
                     room: Callable[[str], int] = _unlimited,
                     skip_accounts: Collection[str] = (),
                     account_room: Callable[[str], int] = _unlimited,
                     ) -> list[tuple[str, DeliveryJob]]:
    """`claim`, each job with its account id, also leaving out the accounts in
    `skip_accounts` and taking at most `account_room(account)` for each other one: many
    endpoints of one account (distinct notify URLs, all dead) cannot fill every slot."""
    d = webhook_deliveries.c
    due = (select(d.id, d.endpoint, d.account_id).where(
        d.status == DeliveryStatus.PENDING.value, d.next_attempt_at <= now,
        or_(d.lease_until.is_(None), d.lease_until < now),
    ).order_by(d.next_attempt_at, d.id).limit(limit * 4))
    if skip:
        due = due.where(d.endpoint.not_in(list(skip)))
    if skip_accounts:
        due = due.where(d.account_id.not_in(list(skip_accounts)))
    if not db.is_sqlite:
        due = due.with_for_update(skip_locked=True)
    with db.write(blocking=True) as conn:  # background: see write_lock.py
        per_endpoint: dict[str, int] = {}
        per_account: dict[str, int] = {}
        ids = []
        for did, endpoint, account in conn.execute(due):
            if len(ids) < limit and per_endpoint.get(endpoint, 0) < room(endpoint) and \
                    per_account.get(account, 0) < account_room(account):
                per_endpoint[endpoint] = per_endpoint.get(endpoint, 0) + 1
                per_account[account] = per_account.get(account, 0) + 1
                ids.append(did)
        if not ids:
            return []
        conn.execute(update(webhook_deliveries).where(d.id.in_(ids)).values(
            lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds)))
        found = conn.execute(select(webhook_deliveries).where(d.id.in_(ids))).mappings().all()
        keys = _secrets_for(conn, found, now)
    order = {did: i for i, did in enumerate(ids)}
    return [(m["account_id"], DeliveryJob(
        id=m["id"], url=m["url"], endpoint=m["endpoint"], content_type=m["content_type"],
        body=m["body"], event_ids=tuple(m["event_ids"] or ()), attempts=m["attempts"],
        created_at=m["created_at"], give_up_at=m["give_up_at"],
        secrets=keys.get(m["webhook_id"] or m["account_id"], ()),
    )) for m in sorted(found, key=lambda m: order[m["id"]])]


def _secrets_for(conn: Any, found: Sequence[Any], now: datetime) -> dict[str, tuple[str, ...]]:
    """{webhook id or account id: signing secrets} for the claimed deliveries."""
    hook_ids = sorted({m["webhook_id"] for m in found if m["webhook_id"]})
    account_ids = sorted({m["account_id"] for m in found if not m["webhook_id"]})
    keys: dict[str, tuple[str, ...]] = {}
    for table, key_col, wanted in ((webhooks, webhooks.c.id, hook_ids),
                                   (webhook_account_secrets,
                                    webhook_account_secrets.c.account_id, account_ids)):
        for row in _in_chunks(conn, lambda part, t=table, k=key_col: select(
                k, t.c.secret, t.c.previous_secret, t.c.previous_secret_until
        ).where(k.in_(part)), wanted):
            keys[row[0]] = signing_secrets(row[1], row[2], row[3], now)
    return keys


def record(db: Database, owner: str, outcomes: Sequence[AttemptOutcome]) -> int:
    """Record attempts and their consequences in one transaction; returns how many deliveries
    changed (an attempt whose lease was lost is still kept in the history)."""
    if not outcomes:
        return 0
    d = webhook_deliveries.c
    changed = 0
    now = rows.utc_now()
    with db.write(blocking=True) as conn:  # background: see write_lock.py
        for o in outcomes:
            rows.require_aware(o.next_attempt_at, "next_attempt_at")
            changed += conn.execute(update(webhook_deliveries).where(
                d.id == o.delivery_id, d.lease_owner == owner,
            ).values(status=o.status.value, attempts=o.attempt, next_attempt_at=o.next_attempt_at,
                     lease_owner=None, lease_until=None, last_status_code=o.status_code,
                     last_error=o.error, updated_at=now)).rowcount
        conn.execute(webhook_attempts.insert(), [{
            "delivery_id": o.delivery_id, "attempt": o.attempt, "at": o.at,
            "duration_ms": o.duration_ms, "status_code": o.status_code,
            "error": (o.error or None) and o.error[:1000]} for o in outcomes])
    return changed


def release(db: Database, owner: str) -> int:
    """Drop `owner`'s leases (graceful stop): those deliveries are due again at once."""
    with db.write(blocking=True) as conn:  # background: see write_lock.py
        return int(conn.execute(update(webhook_deliveries).where(
            webhook_deliveries.c.lease_owner == owner,
        ).values(lease_owner=None, lease_until=None)).rowcount)


def counts(db: Database) -> dict[str, int]:
    """Deliveries per status (every status present)."""
    found = {s.value: 0 for s in DeliveryStatus}
    with db.read() as conn:
        for status, n in conn.execute(select(webhook_deliveries.c.status, func.count())
                                      .group_by(webhook_deliveries.c.status)):
            found[status] = int(n)
    return found


def next_due_at(db: Database) -> datetime | None:
    """When the earliest pending delivery is due (None when none is pending)."""
    d = webhook_deliveries.c
    with db.read() as conn:
        value = conn.execute(select(func.min(func.coalesce(d.lease_until, d.next_attempt_at)))
                             .where(d.status == DeliveryStatus.PENDING.value)).scalar()
    return None if value is None else _aware(value)
