"""Webhook endpoints, the secrets that sign deliveries, and complaints.

Secrets are kept in clear (HMAC needs them) and leave the store in two places only: the answer
that creates or rotates one (shown once) and the sender that signs with it. A rotation keeps the
previous secret valid for a while, so a receiver can switch without dropping a delivery: while
both are valid every delivery carries both signatures.
"""

from __future__ import annotations

import secrets as random_secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, select, update

from postroom.model.ids import new_id
from postroom.model.records import EventType
from postroom.model.webhooks import DeliveryStatus, Webhook
from postroom.store import rows
from postroom.store.accounts import suppression_insert
from postroom.store.engine import Database
from postroom.store.reads import event_row, insert_event
from postroom.store.schema import webhook_account_secrets, webhook_deliveries, webhooks

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + random_secrets.token_urlsafe(32)


def _webhook(m: Mapping[str, Any]) -> Webhook:
    return Webhook(
        id=m["id"], account_id=m["account_id"], url=m["url"],
        event_types=tuple(m["event_types"] or ()), batch_size=m["batch_size"],
        description=m["description"], created_at=m["created_at"],
        previous_secret_until=m["previous_secret_until"] if m["previous_secret"] else None,
    )


def create_webhook(
    db: Database, account_id: str, url: str, *, event_types: Sequence[str], batch_size: int,
    description: str,
) -> tuple[Webhook, str]:
    """A new endpoint and its secret (the only time the secret is returned)."""
    for t in event_types:
        EventType(t)  # ValueError for an unknown type
    secret = new_secret()
    row = {"id": new_id(), "account_id": account_id, "url": url,
           "event_types": sorted(set(event_types)), "batch_size": batch_size,
           "description": description, "secret": secret, "previous_secret": None,
           "previous_secret_until": None, "created_at": rows.utc_now(), "deleted_at": None}
    with db.write() as conn:
        conn.execute(webhooks.insert().values(**row))
    return _webhook(row), secret


def _live(account_id: str | None = None) -> Any:
    query = select(webhooks).where(webhooks.c.deleted_at.is_(None))
    return query if account_id is None else query.where(webhooks.c.account_id == account_id)


def get_webhook(db: Database, account_id: str, webhook_id: str) -> Webhook | None:
    with db.read() as conn:
        m = conn.execute(_live(account_id).where(webhooks.c.id == webhook_id)).mappings().first()
    return _webhook(m) if m is not None else None


def list_webhooks(db: Database, account_id: str | None) -> list[Webhook]:
    """An account's live endpoints, oldest first (every account's when None)."""
    with db.read() as conn:
        found = conn.execute(_live(account_id).order_by(webhooks.c.id)).mappings().all()
    return [_webhook(m) for m in found]


def webhooks_of(conn: Connection, account_ids: Iterable[str]) -> dict[str, list[Webhook]]:
    """Live endpoints of several accounts, inside the caller's transaction."""
    ids = sorted(set(account_ids))
    found: dict[str, list[Webhook]] = {a: [] for a in ids}
    for start in range(0, len(ids), 500):
        query = _live().where(webhooks.c.account_id.in_(ids[start:start + 500]))
        for m in conn.execute(query.order_by(webhooks.c.id)).mappings():
            found[m["account_id"]].append(_webhook(m))
    return found


def delete_webhook(db: Database, account_id: str, webhook_id: str) -> bool:
    """Stop an endpoint: no new deliveries; pending ones end `cancelled` (history is kept)."""
    now = rows.utc_now()
    with db.write() as conn:
        gone = conn.execute(update(webhooks).where(
            webhooks.c.id == webhook_id, webhooks.c.account_id == account_id,
            webhooks.c.deleted_at.is_(None)).values(deleted_at=now)).rowcount
        if gone:
            d = webhook_deliveries.c
            conn.execute(update(webhook_deliveries).where(
                d.webhook_id == webhook_id, d.status == DeliveryStatus.PENDING.value,
            ).values(status=DeliveryStatus.CANCELLED.value, next_attempt_at=None,
                     lease_owner=None, lease_until=None, updated_at=now))  # a POST in
            # flight keeps its attempt in the history but can no longer revive the delivery
    return gone > 0


def _rotate(conn: Connection, table: Table, where: Any, keep: timedelta) -> str | None:
    """Make a new secret current; the old one stays valid for `keep` (not at all when 0)."""
    old = conn.execute(select(table.c.secret).where(where)).scalar_one_or_none()
    if old is None:
        return None
    secret = new_secret()
    keep_old = keep.total_seconds() > 0
    conn.execute(update(table).where(where).values(
        secret=secret, previous_secret=old if keep_old else None,
        previous_secret_until=rows.utc_now() + keep if keep_old else None))
    return secret


def rotate_webhook_secret(db: Database, account_id: str, webhook_id: str,
                          keep: timedelta) -> str | None:
    """The new secret, or None for an unknown (or deleted) webhook."""
    where = ((webhooks.c.id == webhook_id) & (webhooks.c.account_id == account_id)
             & webhooks.c.deleted_at.is_(None))
    with db.write() as conn:
        return _rotate(conn, webhooks, where, keep)


def ensure_account_secrets(db: Database, conn: Connection, account_ids: Iterable[str]) -> None:
    """Give accounts a signing secret for notify URLs if they have none (inside a write)."""
    for account_id in sorted(set(account_ids)):
        conn.execute(db.insert(webhook_account_secrets).values(
            account_id=account_id, secret=new_secret(), previous_secret=None,
            previous_secret_until=None, created_at=rows.utc_now(),
        ).on_conflict_do_nothing(index_elements=["account_id"]))


def rotate_account_secret(db: Database, account_id: str, keep: timedelta) -> str:
    """A new account signing secret (made if the account had none); the old one stays valid
    for `keep`."""
    where = webhook_account_secrets.c.account_id == account_id
    with db.write() as conn:
        ensure_account_secrets(db, conn, [account_id])
        secret = _rotate(conn, webhook_account_secrets, where, keep)
    assert secret is not None
    return secret


def signing_secrets(secret: str, previous: str | None, until: datetime | None,
                    now: datetime) -> tuple[str, ...]:
    """The secrets a delivery is signed with now: the current one, and the previous one while
    its rotation window lasts."""
    if previous and until is not None and until > now:
        return (secret, previous)
    return (secret,)


def record_complaint(db: Database, account_id: str, message_id: str | None, recipient: str,
                     data: Mapping[str, Any]) -> int:
    """Append `complained` and suppress the address (reason "complaint") in one transaction;
    returns the event id. The event names the account, so it reaches the account's webhooks
    even when the complaint could not be matched to a message.

    A complaint is recorded once per (message, recipient) (`reads.insert_event`): the same
    report again, or a remote MTA's retry after a 451, records nothing and answers with the
    id of the event that records it."""
    row = event_row(EventType.COMPLAINED, message_id=message_id, recipient=recipient.lower(),
                    at=rows.utc_now(), data={**data, "account_id": account_id})
    with db.write() as conn:
        event_id, new = insert_event(conn, row)
        if new:
            conn.execute(suppression_insert(db, account_id, recipient, "complaint"))
    return event_id
