"""Sender domains' DKIM keys and the server's shared secrets.

Both are small, rarely written tables read by delivery: a key is looked up per sender domain
(and cached by the caller), a secret once per process. Secrets are created on first use with
INSERT ... ON CONFLICT DO NOTHING followed by a read, so processes racing to create the same
secret all end up with the one value that won.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from postroom.store import rows
from postroom.store.engine import Database
from postroom.store.schema import dkim_keys, secrets

__all__ = ["DkimKey", "add_dkim_key", "get_dkim_key", "get_or_create_secret", "list_dkim_keys"]


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A sender domain's signing key. `private_key` is PEM (PKCS#8); keep it out of logs."""

    domain: str
    selector: str
    algorithm: str
    private_key: bytes
    created_at: datetime | None = None

    def __repr__(self) -> str:  # never print the key
        return f"DkimKey(domain={self.domain!r}, selector={self.selector!r}, " \
               f"algorithm={self.algorithm!r})"


def _normal(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def _key(m: object) -> DkimKey:
    row = m._mapping  # type: ignore[attr-defined]
    return DkimKey(
        domain=row["domain"], selector=row["selector"], algorithm=row["algorithm"],
        private_key=row["private_key"].encode("ascii"), created_at=row["created_at"],
    )


def add_dkim_key(
    db: Database, domain: str, selector: str, algorithm: str, private_key: bytes
) -> DkimKey:
    """Store a domain's key; AlreadyExists when the domain has one."""
    values = {
        "domain": _normal(domain), "selector": selector, "algorithm": algorithm,
        "private_key": private_key.decode("ascii"), "created_at": rows.utc_now(),
    }
    with db.write() as conn:
        conn.execute(dkim_keys.insert().values(values))
    return get_dkim_key(db, domain)  # type: ignore[return-value]


def get_dkim_key(db: Database, domain: str) -> DkimKey | None:
    with db.read() as conn:
        row = conn.execute(
            select(dkim_keys).where(dkim_keys.c.domain == _normal(domain))
        ).first()
    return _key(row) if row is not None else None


def list_dkim_keys(db: Database) -> list[DkimKey]:
    with db.read() as conn:
        return [_key(r) for r in conn.execute(select(dkim_keys).order_by(dkim_keys.c.domain))]


def get_or_create_secret(db: Database, name: str, size: int = 32) -> bytes:
    """The secret called `name`, made of `size` random bytes the first time it is asked for."""
    query = select(secrets.c.value).where(secrets.c.name == name)
    with db.read() as conn:
        found = conn.execute(query).scalar_one_or_none()
    if found is not None:
        return bytes(found)
    stmt = db.insert(secrets).values(
        name=name, value=os.urandom(size), created_at=rows.utc_now()
    ).on_conflict_do_nothing(index_elements=["name"])
    with db.write() as conn:
        conn.execute(stmt)
        return bytes(conn.execute(query).scalar_one())
