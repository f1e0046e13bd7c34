"""Filtered reads behind the HTTP API (messages, the event log with its cursor) and the
cancellation of scheduled mail.

One function per statement group, each saying what it does; `Store` exposes them
(store/http_methods.py). Idempotency keys, files and templates are in store/http_resources.py;
consent, account settings and data subject requests in store/http_privacy.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update

from postroom.model.records import EventType, RecipientStatus
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import events, messages, recipients
from postroom.store.xact import in_commit_order

# --- messages ----------------------------------------------------------------------------


def message_ids(
    db: Database, account_id: str, *, status: str | None, recipient: str | None,
    since: datetime | None, until: datetime | None, campaign: str | None, tag: str | None,
    limit: int, before: str | None,
) -> list[str]:
    """Ids of the account's messages matching the filters, newest first (cursor: `before`)."""
    query = select(messages.c.id).where(messages.c.account_id == account_id)
    if before:
        query = query.where(messages.c.id < before)
    if since:
        query = query.where(messages.c.created_at >= since)
    if until:
        query = query.where(messages.c.created_at < until)
    if status or recipient:
        cond = [recipients.c.message_id == messages.c.id]
        if status:
            cond.append(recipients.c.status == status)
        if recipient:
            cond.append(func.lower(recipients.c.address) == recipient.lower())
        query = query.where(exists().where(and_(*cond)))
    query = query.order_by(messages.c.id.desc())
    if not (campaign or tag):
        with db.read() as conn:
            return [r[0] for r in conn.execute(query.limit(limit))]
    # options is JSON: filter in Python, window after window (newest first) until `limit`
    # matches or the end, so that a short page always means there is nothing further.
    window = max(limit * 20, _OPTIONS_WINDOW)
    query = query.add_columns(messages.c.options)
    out: list[str] = []
    last: str | None = None
    with db.read() as conn:
        while len(out) < limit:
            page = query if last is None else query.where(messages.c.id < last)
            found = conn.execute(page.limit(window)).all()
            for r in found:
                if _options_match(r[1] or {}, campaign, tag):
                    out.append(r[0])
            if len(found) < window:
                break
            last = found[-1][0]
    return out[:limit]


#: Rows read per round when filtering on the JSON `options` (campaign, tag) in Python.
_OPTIONS_WINDOW = 1000


def _options_match(opts: dict[str, Any], campaign: str | None, tag: str | None) -> bool:
    if campaign and campaign not in (opts.get("campaign_id"), opts.get("campaign_name")):
        return False
    return not (tag and tag not in (opts.get("tags") or ()))


# --- events ------------------------------------------------------------------------------


def events_for_account(
    db: Database, account_id: str, *, message_id: str | None, type_: str | None,
    recipient: str | None, since: datetime | None, until: datetime | None, limit: int,
    after: int | None,
) -> list[Any]:
    """The account's events oldest first, resuming after the event whose id is `after`.

    SQLite has one writer, so ids are commit order: `id > after`. On PostgreSQL ids are not,
    so the log is served in (xact_id, id) order and only up to the oldest transaction still in
    flight (store/xact.py): a page never passes over an event that commits later."""
    query = (select(events).join(messages, messages.c.id == events.c.message_id)
             .where(messages.c.account_id == account_id).limit(limit))
    for col, value in ((events.c.message_id, message_id), (events.c.type, type_)):
        if value:
            query = query.where(col == value)
    if recipient:  # addresses are stored as written; a person is one address in any case
        query = query.where(func.lower(events.c.recipient) == recipient.lower())
    if since:
        query = query.where(events.c.at >= since)
    if until:
        query = query.where(events.c.at < until)
    if db.is_sqlite:
        query = query.order_by(events.c.id)
        if after is not None:
            query = query.where(events.c.id > after)
    else:
        query = in_commit_order(query, events, after)
    with db.read() as conn:
        return [rows.event(r._mapping) for r in conn.execute(query)]


# --- scheduled mail ----------------------------------------------------------------------


def cancel_scheduled(db: Database, account_id: str, message_id: str) -> list[str]:
    """Fail the message's still-scheduled recipients (cancelled); returns their addresses."""
    now = rows.utc_now()
    with db.write() as conn:
        owned = conn.execute(select(messages.c.id).where(
            messages.c.id == message_id, messages.c.account_id == account_id)).first()
        if owned is None:
            return []
        found = conn.execute(select(recipients.c.id, recipients.c.address).where(
            recipients.c.message_id == message_id,
            recipients.c.status == RecipientStatus.SCHEDULED.value,
            or_(recipients.c.lease_until.is_(None), recipients.c.lease_until < now),
        )).all()
        if not found:
            return []
        conn.execute(update(recipients).where(recipients.c.id.in_([r[0] for r in found])).values(
            status=RecipientStatus.FAILED.value, last_reply="cancelled before sending",
            next_attempt_at=None, updated_at=now))
        conn.execute(events.insert(), [{
            "type": EventType.FAILED.value, "message_id": message_id, "recipient": r[1],
            "at": now, "attempt": None, "remote_host": None, "reply": "cancelled before sending",
            "data": {"cancelled": True}} for r in found])
    return [r[1] for r in found]
