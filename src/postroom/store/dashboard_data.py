"""Reads behind the web dashboard (`postroom.web`) that `Store` does not offer.

The dashboard searches where the API only filters (parts of a sender, a subject or a recipient),
counts an account's activity per day, pages suppressions, reads the header block of a stored
message and pages its timeline newest first (the message reads are in `dashboard_messages`).
All of it is SQLAlchemy Core on the existing tables and indexes, on SQLite and PostgreSQL
alike: no new schema, so nothing here needs a migration.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal_column, select

from postroom.model.records import Account, ApiKey, Suppression
from postroom.store import rows
from postroom.store.dashboard_messages import (
    EventPage,
    HeaderBlock,
    MessageFilter,
    MessagePage,
    MessageRow,
    find_messages,
    message_events,
    message_head,
)
from postroom.store.engine import Database
from postroom.store.schema import accounts, api_keys, events, messages, suppressions

__all__ = ["MESSAGES", "DashboardData", "EventPage", "HeaderBlock", "MessageFilter",
           "MessagePage", "MessageRow"]

#: Key under which `activity` counts accepted messages (beside the event types).
MESSAGES = "messages"


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
                      before: str | None = None) -> MessagePage:
        return find_messages(self._db, account_id, where, limit=limit, before=before)

    def message_head(self, message_id: str) -> HeaderBlock:
        return message_head(self._db, message_id)

    def message_events(self, message_id: str, *, limit: int, before: int | None = None
                       ) -> EventPage:
        return message_events(self._db, message_id, limit=limit, before=before)

    def activity(self, account_id: str, now: datetime) -> dict[str, dict[str, int]]:
        return activity(self._db, account_id, now)

    def find_suppressions(self, account_id: str, *, search: str = "", limit: int = 100,
                          after: str | None = None) -> list[Suppression]:
        return find_suppressions(self._db, account_id, search=search, limit=limit, after=after)
