"""Reads behind the web dashboard (`postroom.web`) that `Store` does not offer.

The dashboard searches where the API only filters (parts of a sender, a subject or a recipient),
counts an account's activity per day, pages suppressions and reads the header block of a stored
message. All of it is SQLAlchemy Core on the existing tables and indexes, on SQLite and
PostgreSQL alike: no new schema, so nothing here needs a migration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, literal_column, or_, select

from postroom.model.records import Account, ApiKey, MessageRecord, RecipientRecord, Suppression
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import accounts, api_keys, events, messages, recipients, suppressions

#: Every message column except the raw bytes.
_MESSAGE_COLUMNS = [c for c in messages.c if c.name != "raw"]
#: Rows read per round when the tag or campaign (inside the JSON options) is filtered in Python.
_OPTIONS_WINDOW = 1000
#: Key under which `activity` counts accepted messages (beside the event types).
MESSAGES = "messages"


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Case-insensitive substrings (recipient, sender, subject) and exact values (the rest)."""

    recipient: str = ""
    sender: str = ""
    subject: str = ""
    status: str = ""
    tag: str = ""
    campaign: str = ""


def active_key(db: Database, key_id: str) -> tuple[ApiKey, Account] | None:
    """The key with this id if it is not revoked, and its account (a session's re-check)."""
    query = (select(api_keys, accounts).join(accounts, accounts.c.id == api_keys.c.account_id)
             .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)))
    with db.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    values = row._mapping
    return (rows.api_key({c.name: values[c] for c in api_keys.c}),
            rows.account({c.name: values[c] for c in accounts.c}))


def _like(column: Any, text: str) -> Any:
    return func.lower(column).contains(text.lower(), autoescape=True)


def find_messages(db: Database, account_id: str, where: MessageFilter, *, limit: int,
                  before: str | None = None) -> list[MessageRecord]:
    """The account's messages matching `where`, newest first, with their recipients.

    `before` is the last id of the previous page (ids are time-ordered)."""
    query = select(*_MESSAGE_COLUMNS).where(messages.c.account_id == account_id)
    if before:
        query = query.where(messages.c.id < before)
    if where.sender:
        query = query.where(or_(_like(messages.c.mail_from, where.sender),
                                _like(messages.c.header_from, where.sender)))
    if where.subject:
        query = query.where(_like(messages.c.subject, where.subject))
    if where.status or where.recipient:
        cond = [recipients.c.message_id == messages.c.id]
        if where.status:
            cond.append(recipients.c.status == where.status)
        if where.recipient:
            cond.append(_like(recipients.c.address, where.recipient))
        query = query.where(exists().where(and_(*cond)))
    query = query.order_by(messages.c.id.desc())
    with db.read() as conn:
        if where.tag or where.campaign:
            found = _options_filtered(conn, query, where, limit)
        else:
            found = list(conn.execute(query.limit(limit)))
        rcpts = _recipients_for(conn, [r.id for r in found])
    return [rows.message(r._mapping, tuple(rcpts[r.id])) for r in found]


def _options_filtered(conn: Any, query: Any, where: MessageFilter, limit: int) -> list[Any]:
    """Options are JSON: filter in Python, a window at a time, until `limit` rows match."""
    out: list[Any] = []
    last: str | None = None
    while len(out) < limit:
        page = query if last is None else query.where(messages.c.id < last)
        found = conn.execute(page.limit(_OPTIONS_WINDOW)).all()
        out += [r for r in found if _options_match(r.options or {}, where)]
        if len(found) < _OPTIONS_WINDOW:
            break
        last = found[-1].id
    return out[:limit]


def _options_match(opts: dict[str, Any], where: MessageFilter) -> bool:
    if where.campaign and where.campaign not in (opts.get("campaign_id"),
                                                 opts.get("campaign_name")):
        return False
    return not (where.tag and where.tag not in (opts.get("tags") or ()))


def _recipients_for(conn: Any, ids: Sequence[str]) -> dict[str, list[RecipientRecord]]:
    found: dict[str, list[RecipientRecord]] = {i: [] for i in ids}
    if ids:
        query = select(recipients).where(recipients.c.message_id.in_(list(ids)))
        for row in conn.execute(query.order_by(recipients.c.id)):
            found[row.message_id].append(rows.recipient(row._mapping))
    return found


def message_head(db: Database, message_id: str, size: int = 65536) -> bytes:
    """The first `size` bytes of the stored message (its header block, usually), not the body."""
    query = select(func.substr(messages.c.raw, 1, size)).where(messages.c.id == message_id)
    with db.read() as conn:
        value = conn.execute(query).scalar_one_or_none()
    return bytes(value) if value is not None else b""


def activity(db: Database, account_id: str, now: datetime, days: int = 7
             ) -> dict[str, dict[str, int]]:
    """Counts per event type, plus accepted messages under `MESSAGES`, for the account.

    Keys: "24h" and "7d" (rolling windows ending at `now`), then each of the last `days` UTC
    days ("YYYY-MM-DD", today included; days without activity are present and empty). Each
    table is counted by one grouped query; the day is found with a CASE on indexed times, so
    the same SQL runs on both backends."""
    now = now.astimezone(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    labels = [s.date().isoformat() for s in starts]
    out: dict[str, dict[str, int]] = {"24h": {}, "7d": {}, **{label: {} for label in labels}}
    week, day = now - timedelta(days=7), now - timedelta(days=1)
    floor = min(week, starts[0])
    tables = ((events.c.type, events.c.at,
               events.join(messages, messages.c.id == events.c.message_id)),
              (literal_column(f"'{MESSAGES}'"), messages.c.created_at, messages))
    with db.read() as conn:
        for kind, at, source in tables:
            bucket = case(*[(at >= s, i) for i, s in reversed(list(enumerate(starts)))],
                          else_=-1)
            inner = select(kind.label("kind"), bucket.label("bucket"), at.label("at")
                           ).select_from(source).where(messages.c.account_id == account_id,
                                                       at >= floor).subquery()
            grouped = select(inner.c.kind, inner.c.bucket, func.count(), *[
                func.sum(case((inner.c.at >= t, 1), else_=0)) for t in (day, week)]
            ).group_by(inner.c.kind, inner.c.bucket)
            for name, index, count, in_day, in_week in conn.execute(grouped):
                if index >= 0:
                    _add(out[labels[index]], name, count)
                _add(out["24h"], name, in_day or 0)
                _add(out["7d"], name, in_week or 0)
    return out


def _add(counts: dict[str, int], kind: str, n: int) -> None:
    if n:
        counts[kind] = counts.get(kind, 0) + int(n)


def find_suppressions(db: Database, account_id: str, *, search: str = "", limit: int = 100,
                      after: str | None = None) -> list[Suppression]:
    """The account's suppressed addresses containing `search`, by address (cursor: `after`)."""
    query = select(suppressions).where(suppressions.c.account_id == account_id)
    if search:
        query = query.where(suppressions.c.address.contains(search.lower(), autoescape=True))
    if after:
        query = query.where(suppressions.c.address > after)
    with db.read() as conn:
        found = conn.execute(query.order_by(suppressions.c.address).limit(limit))
        return [rows.suppression(r._mapping) for r in found]


class DashboardData:
    """These reads bound to a `Store` (or anything that delegates to one, such as the
    ingress's RemoteEnqueue), so the dashboard never handles the database object itself."""

    def __init__(self, store: Any) -> None:
        self._db: Database = store._db

    def active_key(self, key_id: str) -> tuple[ApiKey, Account] | None:
        return active_key(self._db, key_id)

    def find_messages(self, account_id: str, where: MessageFilter, *, limit: int,
                      before: str | None = None) -> list[MessageRecord]:
        return find_messages(self._db, account_id, where, limit=limit, before=before)

    def message_head(self, message_id: str) -> bytes:
        return message_head(self._db, message_id)

    def activity(self, account_id: str, now: datetime) -> dict[str, dict[str, int]]:
        return activity(self._db, account_id, now)

    def find_suppressions(self, account_id: str, *, search: str = "", limit: int = 100,
                          after: str | None = None) -> list[Suppression]:
        return find_suppressions(self._db, account_id, search=search, limit=limit, after=after)
