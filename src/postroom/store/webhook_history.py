"""Reading webhook deliveries back, with every attempt, for the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from postroom.model.webhooks import Attempt, Delivery, DeliveryStatus
from postroom.store.engine import Database
from postroom.store.schema import webhook_attempts, webhook_deliveries

_COLUMNS = [c for c in webhook_deliveries.c if c.name not in ("body", "lease_owner")]


def list_deliveries(db: Database, account_id: str, webhook_id: str | None, *, limit: int,
                    before: str | None, status: str | None) -> list[Delivery]:
    d = webhook_deliveries.c
    query = select(*_COLUMNS).where(d.account_id == account_id)
    query = query.where(d.webhook_id.is_(None) if webhook_id is None else
                        d.webhook_id == webhook_id)
    if before:
        query = query.where(d.id < before)
    if status:
        query = query.where(d.status == DeliveryStatus(status).value)
    a = webhook_attempts.c
    with db.read() as conn:
        found = conn.execute(query.order_by(d.id.desc()).limit(limit)).mappings().all()
        history: dict[str, list[Attempt]] = {m["id"]: [] for m in found}
        if history:
            for row in conn.execute(select(webhook_attempts).where(
                    a.delivery_id.in_(list(history))).order_by(a.id)).mappings():
                history[row["delivery_id"]].append(Attempt(
                    attempt=row["attempt"], at=row["at"], duration_ms=row["duration_ms"],
                    status_code=row["status_code"], error=row["error"]))
    return [_delivery(m, history[m["id"]]) for m in found]


def _delivery(m: Any, history: list[Attempt]) -> Delivery:
    pending = m["status"] == DeliveryStatus.PENDING.value
    return Delivery(
        id=m["id"], webhook_id=m["webhook_id"], kind=m["kind"], url=m["url"],
        status=DeliveryStatus(m["status"]), attempts=m["attempts"],
        event_ids=tuple(m["event_ids"] or ()), created_at=m["created_at"],
        updated_at=m["updated_at"], give_up_at=m["give_up_at"],
        next_attempt_at=m["next_attempt_at"] if pending else None,
        last_status_code=m["last_status_code"], last_error=m["last_error"],
        history=tuple(history),
    )


def purge(db: Database, before: datetime, *, limit: int = 5000) -> int:
    """Forget up to `limit` finished deliveries (and their attempts) last changed before
    `before`; returns how many. Pending ones are never purged."""
    d = webhook_deliveries.c
    with db.write(blocking=True) as conn:  # background: see write_lock.py
        ids = list(conn.execute(select(d.id).where(
            d.status != DeliveryStatus.PENDING.value, d.updated_at < before,
        ).limit(limit)).scalars())
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(part)))
            conn.execute(delete(webhook_deliveries).where(d.id.in_(part)))
    return len(ids)
