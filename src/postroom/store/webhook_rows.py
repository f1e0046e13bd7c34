"""The delivery rows dispatch writes, and the checks that keep one bad URL from stopping it.

Dispatch writes its deliveries with the cursor's move (`webhook_queue.dispatch`), so a row the
database refuses would stop dispatch for every account, for ever. The doors refuse URLs the
pipeline cannot use (`http_url_problem`); what was stored before they did is dropped here with
a warning, once per webhook (or notify/tracking URL) per process: such a webhook has an event
on every dispatch pass, and the same line every quarter of a second helps nobody. A URL with
credentials (`https://user:pass@host/`) is dropped too: deliveries are signed instead, and the
credentials must neither reach the receiver as Basic auth nor show in a log or the history.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import String
from sqlalchemy.exc import DataError

from postroom.model.ids import new_id
from postroom.model.webhooks import DeliveryKind, DeliveryStatus, NewDelivery
from postroom.store.schema import webhook_deliveries

log = logging.getLogger("postroom.events")
CHUNK = 500
#: Why a URL with credentials is refused, wherever it is (registration, dispatch, the sender).
CREDENTIALS = "the URL must not carry credentials (deliveries are signed instead)"
#: Webhooks and URLs warned about in this process; past this many, warnings repeat (bounded).
MAX_WARNED = 10_000
_warned: set[tuple[str, ...]] = set()
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@")


def carries_credentials(url: str) -> bool:
    """The URL's authority has a userinfo part (`user:pass@`, `user@`, even a bare `@`)."""
    return _USERINFO.match(url) is not None


def shown(url: str) -> str:
    """`url` for a log line: without its credentials, if it has any."""
    return _USERINFO.sub(r"\1", url, count=1)


def endpoint_of(url: str) -> str:
    """scheme://host:port: deliveries to one server share its concurrency and back-off."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def in_chunks(conn: Any, make: Callable[[list[Any]], Any], keys: Sequence[Any]) -> list[Any]:
    """The rows of `make(keys)`, asked CHUNK keys at a time (bounded IN lists)."""
    found: list[Any] = []
    for start in range(0, len(keys), CHUNK):
        found += conn.execute(make(list(keys[start:start + CHUNK]))).all()
    return found


def storable(planned: Sequence[NewDelivery], now: datetime, give_up_after: float
             ) -> list[dict[str, Any]]:
    """The rows of the `planned` deliveries that can be kept and sent; any other is dropped
    with a log line (see the module docstring)."""
    found = []
    for d in planned:
        try:
            endpoint = endpoint_of(d.url)
        except ValueError as exc:
            drop(d, str(exc))
            continue
        if carries_credentials(d.url):
            drop(d, CREDENTIALS)
            continue
        row = delivery_row(d, endpoint, now, give_up_after)
        problem = _unfit(row)
        if problem:
            drop(d, problem)
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


def drop(d: NewDelivery | dict[str, Any], problem: str) -> None:
    """Log a dropped delivery: a warning the first time for its webhook (or, for notify and
    tracking deliveries, its account and URL) in this process, after that at debug level."""
    if isinstance(d, dict):
        kind, account_id, url, hook = d["kind"], d["account_id"], d["url"], d["webhook_id"]
    else:
        kind, account_id, url, hook = d.kind, d.account_id, d.url, d.webhook_id
    kind = DeliveryKind(kind).value
    key = ("webhook", hook) if hook else (kind, account_id, url)
    first = key not in _warned
    if first and len(_warned) < MAX_WARNED:
        _warned.add(key)
    log.log(logging.WARNING if first else logging.DEBUG,
            "webhooks: a %s delivery of account %s to %.200r was dropped: %s%s", kind,
            account_id, shown(url), problem,
            f" (webhook {hook}; said once per process)" if first and hook else "")


def insert_deliveries(conn: Any, found: list[dict[str, Any]]) -> None:
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
            drop(row, str(exc).splitlines()[0][:300])


def delivery_row(d: NewDelivery, endpoint: str, now: datetime, give_up_after: float
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
