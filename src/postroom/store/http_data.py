"""Queries behind the HTTP API: idempotency, file cache, templates, consent, filtered reads.

One function per statement group, each saying what it does; `Store` exposes them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update

from postroom.model.ids import new_id
from postroom.model.records import Consent, EventType, RecipientStatus, StoredFile, Template
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import (
    accounts,
    consents,
    events,
    files,
    idempotency_keys,
    message_chunks,
    messages,
    recipients,
    suppressions,
    templates,
)

# --- idempotency -------------------------------------------------------------------------


def idempotency_claim(
    db: Database, account_id: str, key: str, request_hash: str, *, ttl: timedelta,
    stale: timedelta,
) -> tuple[str, int, Any]:
    """Claim `key` for this request. Returns ("new", 0, None), ("done", status, response),
    ("busy", 0, None) while another request holds it, or ("mismatch", 0, None) when the key was
    used for a different request body.

    Race-free on both backends: the claim is an INSERT … ON CONFLICT DO NOTHING (on PostgreSQL
    a concurrent claim waits for the first one's commit instead of failing on the key), and an
    expired or abandoned row is taken over by an UPDATE conditional on the row read; whoever
    loses either race reads the winner's row and gets the same answer as a later request."""
    now = rows.utc_now()
    where = (idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key)
    with db.write() as conn:
        for _ in range(3):  # a row deleted or taken over meanwhile (PostgreSQL): look again
            claimed = conn.execute(db.insert(idempotency_keys).values(
                account_id=account_id, key=key, request_hash=request_hash, status_code=0,
                response=None, created_at=now,
            ).on_conflict_do_nothing(index_elements=["account_id", "key"])
                .returning(idempotency_keys.c.key)).first()
            if claimed is not None:
                return ("new", 0, None)
            row = conn.execute(select(idempotency_keys).where(*where)).mappings().first()
            if row is None:
                continue  # released between our INSERT and SELECT: claim it again
            expired = row["created_at"] < now - ttl
            abandoned = row["status_code"] == 0 and row["created_at"] < now - stale
            if not (expired or abandoned):
                if row["request_hash"] != request_hash:
                    return ("mismatch", 0, None)
                if row["status_code"] == 0:
                    return ("busy", 0, None)
                return ("done", row["status_code"], row["response"])
            taken = conn.execute(update(idempotency_keys).where(
                *where, idempotency_keys.c.created_at == row["created_at"],
                idempotency_keys.c.status_code == row["status_code"],
            ).values(request_hash=request_hash, status_code=0, response=None, created_at=now)
                .returning(idempotency_keys.c.key)).first()
            if taken is not None:
                return ("new", 0, None)
    return ("busy", 0, None)


def idempotency_finish(db: Database, account_id: str, key: str, status: int, response: Any) -> None:
    with db.write() as conn:
        conn.execute(update(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
        ).values(status_code=status, response=response))


def idempotency_release(db: Database, account_id: str, key: str) -> None:
    with db.write() as conn:
        conn.execute(delete(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key,
            idempotency_keys.c.status_code == 0))


# --- file cache --------------------------------------------------------------------------


def _file(m: Any, with_data: bool) -> StoredFile:
    return StoredFile(key=m["key"], account_id=m["account_id"], name=m["name"],
                      content_type=m["content_type"], size=m["size"],
                      created_at=m["created_at"], expires_at=m["expires_at"],
                      data=bytes(m["data"]) if with_data else None)


def file_put(db: Database, account_id: str, name: str, content_type: str, data: bytes,
             expires_at: datetime) -> StoredFile:
    key = secrets.token_hex(24)
    row = {"key": key, "account_id": account_id, "name": name, "content_type": content_type,
           "size": len(data), "data": data, "created_at": rows.utc_now(),
           "expires_at": expires_at}
    with db.write() as conn:
        conn.execute(files.insert().values(**row))
    return _file(row, with_data=False)


def file_get(db: Database, account_id: str | None, key: str, *, with_data: bool) -> StoredFile | None:
    """A live (unexpired) file; `account_id=None` looks across accounts (SMTP resolves keys
    before it knows nothing else)."""
    cols = [c for c in files.c if with_data or c.name != "data"]
    query = select(*cols).where(files.c.key == key, files.c.expires_at > rows.utc_now())
    if account_id is not None:
        query = query.where(files.c.account_id == account_id)
    with db.read() as conn:
        m = conn.execute(query).mappings().first()
    return _file(m, with_data) if m is not None else None


def file_delete(db: Database, account_id: str, key: str) -> bool:
    with db.write() as conn:
        return conn.execute(delete(files).where(
            files.c.key == key, files.c.account_id == account_id)).rowcount > 0


def files_purge_expired(db: Database) -> int:
    with db.write() as conn:
        return conn.execute(delete(files).where(files.c.expires_at <= rows.utc_now())).rowcount


def file_list(db: Database, account_id: str, limit: int) -> list[StoredFile]:
    cols = [c for c in files.c if c.name != "data"]
    with db.read() as conn:
        found = conn.execute(select(*cols).where(
            files.c.account_id == account_id, files.c.expires_at > rows.utc_now()
        ).order_by(files.c.created_at.desc()).limit(limit)).mappings().all()
    return [_file(m, False) for m in found]


# --- templates ---------------------------------------------------------------------------


def _template(m: Any) -> Template:
    return Template(id=m["id"], account_id=m["account_id"], name=m["name"], subject=m["subject"],
                    html=m["html"], text=m["text"], attachments=tuple(m["attachments"] or ()),
                    missing_policy=m["missing_policy"], created_at=m["created_at"],
                    updated_at=m["updated_at"])


def template_save(db: Database, account_id: str, fields: dict[str, Any],
                  template_id: str | None = None) -> Template | None:
    now = rows.utc_now()
    values = {k: fields[k] for k in ("name", "subject", "html", "text", "attachments",
                                     "missing_policy") if k in fields}
    with db.write() as conn:
        if template_id is None:
            template_id = new_id()
            conn.execute(templates.insert().values(
                id=template_id, account_id=account_id, created_at=now, updated_at=now,
                **{"subject": "", "html": "", "text": "", "attachments": [],
                   "missing_policy": "error", **values}))
        elif conn.execute(update(templates).where(
                templates.c.id == template_id, templates.c.account_id == account_id
        ).values(updated_at=now, **values)).rowcount == 0:
            return None
        m = conn.execute(select(templates).where(templates.c.id == template_id)).mappings().one()
    return _template(m)


def template_get(db: Database, account_id: str, template_id: str) -> Template | None:
    with db.read() as conn:
        m = conn.execute(select(templates).where(
            templates.c.id == template_id, templates.c.account_id == account_id
        )).mappings().first()
    return _template(m) if m is not None else None


def template_list(db: Database, account_id: str) -> list[Template]:
    with db.read() as conn:
        return [_template(m) for m in conn.execute(select(templates).where(
            templates.c.account_id == account_id).order_by(templates.c.name)).mappings()]


def template_delete(db: Database, account_id: str, template_id: str) -> bool:
    with db.write() as conn:
        return conn.execute(delete(templates).where(
            templates.c.id == template_id, templates.c.account_id == account_id)).rowcount > 0


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


# --- filtered reads ----------------------------------------------------------------------


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


def events_for_account(
    db: Database, account_id: str, *, message_id: str | None, type_: str | None,
    recipient: str | None, since: datetime | None, until: datetime | None, limit: int,
    after: int | None,
) -> list[Any]:
    query = (select(events).join(messages, messages.c.id == events.c.message_id)
             .where(messages.c.account_id == account_id).order_by(events.c.id).limit(limit))
    for col, value in ((events.c.message_id, message_id), (events.c.type, type_)):
        if value:
            query = query.where(col == value)
    if recipient:  # addresses are stored as written; a person is one address in any case
        query = query.where(func.lower(events.c.recipient) == recipient.lower())
    if since:
        query = query.where(events.c.at >= since)
    if until:
        query = query.where(events.c.at < until)
    if after is not None:
        query = query.where(events.c.id > after)
    with db.read() as conn:
        return [rows.event(r._mapping) for r in conn.execute(query)]


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

