"""Account settings and personal data: consent records, data subject requests (access,
export, erase), the suppression entry of an address.

One function per statement group; `Store` exposes them (store/http_methods.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from postroom.model.records import Consent
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import (
    accounts,
    consents,
    events,
    message_chunks,
    messages,
    recipients,
    suppressions,
)

# --- consent -----------------------------------------------------------------------------


def consent_record(db: Database, account_id: str, address: str, ip: str, source: str) -> Consent:
    now = rows.utc_now()
    stmt = db.insert(consents).values(account_id=account_id, address=address.lower(),
                                      granted_at=now, ip=ip, source=source)
    with db.write() as conn:
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["account_id", "address"],
            set_={"granted_at": now, "ip": ip, "source": source}))
    return Consent(account_id, address.lower(), now, ip, source)


def consents_list(db: Database, account_id: str, address: str | None) -> list[Consent]:
    query = select(consents).where(consents.c.account_id == account_id)
    if address is not None:
        query = query.where(consents.c.address == address.lower())
    with db.read() as conn:
        return [Consent(m["account_id"], m["address"], m["granted_at"], m["ip"], m["source"])
                for m in conn.execute(query.order_by(consents.c.address)).mappings()]


def consented_among(db: Database, account_id: str, addresses: Iterable[str]) -> set[str]:
    wanted = {a.lower(): a for a in addresses}
    if not wanted:
        return set()
    with db.read() as conn:
        found = conn.execute(select(consents.c.address).where(
            consents.c.account_id == account_id, consents.c.address.in_(list(wanted))
        )).scalars().all()
    return {wanted[a] for a in found}


# --- account settings --------------------------------------------------------------------

UPDATABLE = frozenset({"require_consent", "tracking_base_url", "track_opens", "track_clicks",
                       "list_unsubscribe", "daily_limit", "bounce_address"})


def update_account(db: Database, account_id: str, fields: dict[str, Any]) -> bool:
    """Change an account's settings (only the columns in UPDATABLE)."""
    bad = set(fields) - UPDATABLE
    if bad:
        raise ValueError(f"cannot update {sorted(bad)}")
    if not fields:
        return True
    with db.write() as conn:
        return conn.execute(update(accounts).where(accounts.c.id == account_id)
                            .values(**fields)).rowcount > 0


def set_require_consent(db: Database, account_id: str, value: bool) -> bool:
    with db.write() as conn:
        return conn.execute(update(accounts).where(accounts.c.id == account_id)
                            .values(require_consent=value)).rowcount > 0


# --- data subject requests ---------------------------------------------------------------


def messages_involving(db: Database, account_id: str, address: str) -> list[str]:
    addr = address.lower()
    with db.read() as conn:
        as_rcpt = select(recipients.c.message_id).where(func.lower(recipients.c.address) == addr)
        return list(conn.execute(select(messages.c.id).where(
            messages.c.account_id == account_id,
            or_(messages.c.id.in_(as_rcpt), func.lower(messages.c.mail_from) == addr,
                func.lower(messages.c.header_from) == addr),
        ).order_by(messages.c.id)).scalars())


def erase_address(db: Database, account_id: str, address: str, ids: Sequence[str]) -> str:
    """Replace the address by a hash and drop the bodies that carried it; counts survive."""
    addr = address.lower()
    token = "erased-" + hashlib.sha256(addr.encode()).hexdigest()[:32] + "@erased.invalid"
    with db.write() as conn:
        if ids:
            conn.execute(update(recipients).where(recipients.c.message_id.in_(ids),
                                                  func.lower(recipients.c.address) == addr)
                         .values(address=token, domain="erased.invalid"))
            conn.execute(update(events).where(events.c.message_id.in_(ids),
                                              func.lower(events.c.recipient) == addr)
                         .values(recipient=token))
            conn.execute(delete(message_chunks).where(message_chunks.c.message_id.in_(ids)))
            conn.execute(update(messages).where(messages.c.id.in_(ids)).values(raw=b"", subject=""))
            conn.execute(update(messages).where(messages.c.id.in_(ids),
                                                func.lower(messages.c.mail_from) == addr)
                         .values(mail_from=token))
            conn.execute(update(messages).where(messages.c.id.in_(ids),
                                                func.lower(messages.c.header_from) == addr)
                         .values(header_from=token))
        conn.execute(delete(consents).where(consents.c.account_id == account_id,
                                            consents.c.address == addr))
    return token


def suppression_for(db: Database, account_id: str, address: str) -> Any:
    with db.read() as conn:
        return conn.execute(select(suppressions).where(
            suppressions.c.account_id == account_id, suppressions.c.address == address.lower()
        )).mappings().first()
