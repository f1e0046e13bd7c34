"""The dashboard's message reads: the searchable list, a message's header block and timeline.

Every read here is bounded, whatever the account holds. The list summarises each message's
recipients in SQL (a count per status and the first address) instead of loading them. A
filtered search examines at most `SCAN_BUDGET` messages per request, newest first from its
cursor; when that runs out before the page is full, the page says where it stopped and the
next request goes on from there. The header block is read up to `HEAD_CAP` bytes, the
timeline a page of events at a time, newest first.

Text filters ignore ASCII case only, on both backends alike: SQLite's `lower()` folds only
ASCII, so PostgreSQL folds with `translate(A-Z, a-z)` and the term with `fold()`; `Ärger`
finds `Ärger`, not `ärger`, everywhere.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select

from postroom.model.records import Event
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import events, messages, recipients

#: Messages a filtered search examines per request (from its cursor, newest first).
SCAN_BUDGET = 5000
#: Rows of (id, options) read per round when the tag or campaign is matched in Python.
_OPTIONS_WINDOW = 1000
#: Bytes of a stored message read to find the end of its header block (first try, cap).
HEAD_FIRST, HEAD_CAP = 64 * 1024, 1 << 20
#: Earlier events are counted up to this many (a page then says "more than").
EVENT_COUNT_CAP = 100_000
_LIST_COLUMNS = [messages.c[n] for n in ("id", "created_at", "subject", "mail_from",
                                         "header_from", "options")]
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(text: str) -> str:
    """`text` with ASCII capitals lowered, nothing else (what SQLite's `lower()` does)."""
    return text.translate(_ASCII_LOWER)


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Substrings ignoring ASCII case (recipient, sender, subject); exact values (the rest)."""

    recipient: str = ""
    sender: str = ""
    subject: str = ""
    status: str = ""
    tag: str = ""
    campaign: str = ""


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One message of the list, its recipients summarised."""

    id: str
    created_at: datetime
    subject: str
    mail_from: str
    header_from: str
    options: dict[str, Any]
    recipients: int
    #: the first recipient's address ("" when none)
    first: str
    #: (status, count), by status
    statuses: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class MessagePage:
    rows: list[MessageRow]
    #: the `before` cursor of the next page (None: nothing older)
    next_before: str | None = None
    #: set when the scan budget ran out before the page filled: when the oldest message
    #: examined was accepted (the next page goes on searching from there)
    stopped_at: datetime | None = None


def _like(db: Database, column: Any, text: str) -> Any:
    folded = func.lower(column) if db.is_sqlite else func.translate(
        column, string.ascii_uppercase, string.ascii_lowercase)
    return folded.contains(fold(text), autoescape=True)


def _conditions(db: Database, where: MessageFilter) -> list[Any]:
    """The filters SQL can apply (all but tag and campaign, which live in the JSON options)."""
    out = []
    if where.sender:
        out.append(_like(db, messages.c.mail_from, where.sender)
                   | _like(db, messages.c.header_from, where.sender))
    if where.subject:
        out.append(_like(db, messages.c.subject, where.subject))
    if where.status or where.recipient:
        cond = [recipients.c.message_id == messages.c.id]
        if where.status:
            cond.append(recipients.c.status == where.status)
        if where.recipient:
            cond.append(_like(db, recipients.c.address, where.recipient))
        out.append(exists().where(and_(*cond)))
    return out


def find_messages(db: Database, account_id: str, where: MessageFilter, *, limit: int,
                  before: str | None = None, budget: int = SCAN_BUDGET) -> MessagePage:
    """Up to `limit` of the account's messages matching `where`, newest first, below the
    `before` cursor (ids are time-ordered); a filtered search examines at most `budget`."""
    window = [messages.c.account_id == account_id]
    if before:
        window.append(messages.c.id < before)
    conds = _conditions(db, where)
    in_options = bool(where.tag or where.campaign)
    with db.read() as conn:
        floor = None
        if conds or in_options:
            floor = conn.execute(select(messages.c.id, messages.c.created_at).where(*window)
                                 .order_by(messages.c.id.desc()).offset(max(0, budget - 1))
                                 .limit(1)).first()
        if floor is not None:
            window.append(messages.c.id >= floor.id)
        query = select(*_LIST_COLUMNS).where(*window, *conds).order_by(messages.c.id.desc())
        if in_options:
            ids = _options_matching(conn, window + conds, where, limit + 1)
            found = conn.execute(query.where(messages.c.id.in_(ids))).all() if ids else []
        else:
            found = conn.execute(query.limit(limit + 1)).all()
        summaries = _summaries(conn, [r.id for r in found[:limit]])
    page = [MessageRow(r.id, r.created_at, r.subject, r.mail_from, r.header_from,
                       dict(r.options or {}), *summaries[r.id]) for r in found[:limit]]
    if len(found) > limit:
        return MessagePage(page, page[-1].id)
    if floor is not None:
        return MessagePage(page, floor.id, floor.created_at)
    return MessagePage(page)


def _options_matching(conn: Any, window: list[Any], where: MessageFilter, want: int
                      ) -> list[str]:
    """Ids (newest first) whose options match, reading only (id, options) a round at a time."""
    out: list[str] = []
    query = select(messages.c.id, messages.c.options).where(*window
                                                            ).order_by(messages.c.id.desc())
    last: str | None = None
    while len(out) < want:
        page = query if last is None else query.where(messages.c.id < last)
        found = conn.execute(page.limit(_OPTIONS_WINDOW)).all()
        out += [r.id for r in found if _options_match(r.options or {}, where)]
        if len(found) < _OPTIONS_WINDOW:
            break
        last = found[-1].id
    return out[:want]


def _options_match(opts: dict[str, Any], where: MessageFilter) -> bool:
    if where.campaign and where.campaign not in (opts.get("campaign_id"),
                                                 opts.get("campaign_name")):
        return False
    return not (where.tag and where.tag not in (opts.get("tags") or ()))


def _summaries(conn: Any, ids: Sequence[str]
               ) -> dict[str, tuple[int, str, tuple[tuple[str, int], ...]]]:
    """Per message: how many recipients, the first one's address, and the count per status;
    two grouped queries, whatever the number of recipients."""
    counts: dict[str, dict[str, int]] = {i: {} for i in ids}
    firsts: dict[str, int] = {}
    if ids:
        grouped = select(recipients.c.message_id, recipients.c.status, func.count(),
                         func.min(recipients.c.id)).where(
            recipients.c.message_id.in_(list(ids))).group_by(recipients.c.message_id,
                                                             recipients.c.status)
        for message_id, status, n, first in conn.execute(grouped):
            counts[message_id][status] = int(n)
            firsts[message_id] = min(first, firsts.get(message_id, first))
    addresses: dict[str, str] = {}
    if firsts:
        addresses = dict(conn.execute(select(recipients.c.message_id, recipients.c.address)
                                      .where(recipients.c.id.in_(list(firsts.values())))).all())
    return {i: (sum(counts[i].values()), addresses.get(i, ""), tuple(sorted(counts[i].items())))
            for i in ids}


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    #: the header block, without the blank line that ends it
    data: bytes
    #: False when no end was found within `HEAD_CAP` bytes (the block was cut there)
    complete: bool = True


def message_head(db: Database, message_id: str, first: int = HEAD_FIRST, cap: int = HEAD_CAP
                 ) -> HeaderBlock:
    """A stored message's header block: the first `first` bytes, then (when its end is not
    among them) up to `cap`; never the body."""
    def read(size: int) -> tuple[bytes, int] | None:
        query = select(func.substr(messages.c.raw, 1, size), func.length(messages.c.raw)
                       ).where(messages.c.id == message_id)
        with db.read() as conn:
            found = conn.execute(query).first()
        return None if found is None else (bytes(found[0]), int(found[1]))

    got = read(first)
    if got is None:
        return HeaderBlock(b"")
    head, length = got
    end = _end_of_head(head)
    if end is None and length > first:
        head, length = read(cap) or (b"", 0)
        end = _end_of_head(head)
    if end is not None:
        return HeaderBlock(head[:end])
    return HeaderBlock(head, complete=length <= len(head))


def _end_of_head(data: bytes) -> int | None:
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class EventPage:
    #: oldest first
    events: list[Event]
    #: how many of the message's events are older than these (at most EVENT_COUNT_CAP)
    earlier: int


def message_events(db: Database, message_id: str, *, limit: int, before: int | None = None
                   ) -> EventPage:
    """The message's newest `limit` events older than event `before` (all when None), and a
    count of those before them, so a long timeline shows its latest part, not its start."""
    query = select(events).where(events.c.message_id == message_id)
    if before is not None:
        query = query.where(events.c.id < before)
    with db.read() as conn:
        found = [rows.event(r._mapping) for r in conn.execute(
            query.order_by(events.c.id.desc()).limit(max(0, limit)))]
        earlier = 0
        if len(found) == limit and found:
            older = select(events.c.id).where(events.c.message_id == message_id,
                                              events.c.id < found[-1].id
                                              ).limit(EVENT_COUNT_CAP).subquery()
            earlier = int(conn.execute(select(func.count()).select_from(older)).scalar_one())
    return EventPage(list(reversed(found)), earlier)
