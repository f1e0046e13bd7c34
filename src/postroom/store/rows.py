"""Row mapping -> record conversion: query modules return `postroom.model` values only.

JSON columns come back as lists; records want tuples (they are frozen and hashable-ish).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from postroom.model.records import (
    Account,
    ApiKey,
    Event,
    EventType,
    MessageRecord,
    RecipientRecord,
    RecipientStatus,
    Suppression,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_aware(value: datetime | None, name: str) -> None:
    """Reject naive datetimes at the API boundary (they are always a bug: whose local time?)."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} is a naive datetime: pass a timezone-aware UTC datetime")


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


def account(m: Mapping[str, Any]) -> Account:
    return Account(
        id=m["id"],
        name=m["name"],
        sender_domains=_tuple(m["sender_domains"]),
        sender_addresses=_tuple(m["sender_addresses"]),
        bounce_address=m["bounce_address"],
        daily_limit=m["daily_limit"],
        allow_ips=_tuple(m["allow_ips"]),
        trusted_networks=_tuple(m["trusted_networks"]),
        created_at=m["created_at"],
        require_consent=bool(m.get("require_consent", False)),
        tracking_base_url=m.get("tracking_base_url"),
        track_opens=bool(m.get("track_opens", False)),
        track_clicks=bool(m.get("track_clicks", False)),
        list_unsubscribe=bool(m.get("list_unsubscribe", False)),
    )


def api_key(m: Mapping[str, Any]) -> ApiKey:
    return ApiKey(
        id=m["id"],
        account_id=m["account_id"],
        prefix=m["prefix"],
        scopes=_tuple(m["scopes"]),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def suppression(m: Mapping[str, Any]) -> Suppression:
    return Suppression(
        account_id=m["account_id"],
        address=m["address"],
        reason=m["reason"],
        created_at=m["created_at"],
    )


def recipient(m: Mapping[str, Any]) -> RecipientRecord:
    return RecipientRecord(
        id=m["id"],
        message_id=m["message_id"],
        address=m["address"],
        domain=m["domain"],
        status=RecipientStatus(m["status"]),
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_reply=m["last_reply"],
        remote_host=m["remote_host"],
        updated_at=m["updated_at"],
    )


def message(m: Mapping[str, Any], recipients: tuple[RecipientRecord, ...]) -> MessageRecord:
    return MessageRecord(
        id=m["id"],
        account_id=m["account_id"],
        mail_from=m["mail_from"],
        header_from=m["header_from"],
        subject=m["subject"],
        message_id_header=m["message_id_header"],
        size=m["size"],
        source=m["source"],
        client_ip=m["client_ip"],
        options=dict(m["options"] or {}),
        created_at=m["created_at"],
        not_before=m["not_before"],
        recipients=recipients,
    )


def event(m: Mapping[str, Any]) -> Event:
    return Event(
        id=m["id"],
        type=EventType(m["type"]),
        message_id=m["message_id"],
        recipient=m["recipient"],
        at=m["at"],
        attempt=m["attempt"],
        remote_host=m["remote_host"],
        reply=m["reply"],
        data=dict(m["data"] or {}),
    )
