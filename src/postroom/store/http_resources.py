"""What HTTP clients keep in the store: idempotency keys, uploaded files, templates.

One function per statement group, each saying what it does; `Store` exposes them
(store/http_methods.py).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update

from postroom.model.ids import new_id
from postroom.model.records import StoredFile, Template
from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.errors import AlreadyExists
from postroom.store.schema import files, idempotency_keys, templates

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


class TemplateNameTaken(AlreadyExists):
    """Another template of the account has this name: names are references, so unique."""

    def __init__(self, name: str, template_id: str) -> None:
        super().__init__(f"a template named {name!r} exists ({template_id})")
        self.name, self.template_id = name, template_id


def _find(conn: Any, account_id: str, ref: str) -> Any:
    """The account's template whose id is `ref`, else the only one named `ref` (None when no
    template or several have that name; an id wins over a name that looks like one)."""
    found = conn.execute(select(templates).where(
        templates.c.account_id == account_id,
        or_(templates.c.id == ref, templates.c.name == ref)).limit(3)).mappings().all()
    by_id = [m for m in found if m["id"] == ref]
    return by_id[0] if by_id else (found[0] if len(found) == 1 else None)


def _check_name(conn: Any, account_id: str, name: str, own_id: str | None) -> None:
    other = conn.execute(select(templates.c.id).where(
        templates.c.account_id == account_id, templates.c.name == name,
        templates.c.id != (own_id or "")).limit(1)).scalar()
    if other is not None:
        raise TemplateNameTaken(name, other)


def template_save(db: Database, account_id: str, fields: dict[str, Any],
                  template_ref: str | None = None) -> Template | None:
    """Create (no `template_ref`) or change the template with that id or name. Raises
    TemplateNameTaken when the (new) name belongs to another template of the account."""
    now = rows.utc_now()
    values = {k: fields[k] for k in ("name", "subject", "html", "text", "attachments",
                                     "missing_policy") if k in fields}
    with db.write() as conn:
        if template_ref is None:
            template_id = new_id()
            _check_name(conn, account_id, values.get("name", ""), None)
            conn.execute(templates.insert().values(
                id=template_id, account_id=account_id, created_at=now, updated_at=now,
                **{"subject": "", "html": "", "text": "", "attachments": [],
                   "missing_policy": "error", **values}))
        else:
            found = _find(conn, account_id, template_ref)
            if found is None:
                return None
            template_id = found["id"]
            if "name" in values:
                _check_name(conn, account_id, values["name"], template_id)
            conn.execute(update(templates).where(templates.c.id == template_id)
                         .values(updated_at=now, **values))
        m = conn.execute(select(templates).where(templates.c.id == template_id)).mappings().one()
    return _template(m)


def template_get(db: Database, account_id: str, template_ref: str) -> Template | None:
    """The template with this id or (unique) name in the account."""
    with db.read() as conn:
        m = _find(conn, account_id, template_ref)
    return _template(m) if m is not None else None


def template_list(db: Database, account_id: str) -> list[Template]:
    with db.read() as conn:
        return [_template(m) for m in conn.execute(select(templates).where(
            templates.c.account_id == account_id).order_by(templates.c.name)).mappings()]


def template_delete(db: Database, account_id: str, template_ref: str) -> bool:
    with db.write() as conn:
        found = _find(conn, account_id, template_ref)
        return found is not None and conn.execute(delete(templates).where(
            templates.c.id == found["id"])).rowcount > 0
