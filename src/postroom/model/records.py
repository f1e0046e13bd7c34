"""Records the stages exchange through the store.

These are frozen dataclasses with no behaviour: the store builds them from rows, the submission
step builds `NewMessage`, delivery consumes `Claim`. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class RecipientStatus(StrEnum):
    """Where one recipient of one message stands. Terminal: delivered, bounced, failed."""

    #: accepted, due for delivery now
    QUEUED = "queued"
    #: accepted, held until its scheduled time
    SCHEDULED = "scheduled"
    #: a transient failure happened; due again at next_attempt_at
    DEFERRED = "deferred"
    #: the receiving server accepted it (terminal)
    DELIVERED = "delivered"
    #: a permanent failure (5xx, null MX, NXDOMAIN) (terminal)
    BOUNCED = "bounced"
    #: gave up after the expiry time, or cancelled (terminal)
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (RecipientStatus.DELIVERED, RecipientStatus.BOUNCED, RecipientStatus.FAILED)


class EventType(StrEnum):
    """The one vocabulary of the event log (API, webhooks, CLI)."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    FAILED = "failed"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True, slots=True)
class Account:
    """A sending tenant: who may send, from where, and how much."""

    id: str
    name: str
    sender_domains: tuple[str, ...] = ()
    sender_addresses: tuple[str, ...] = ()
    bounce_address: str | None = None
    daily_limit: int | None = None
    allow_ips: tuple[str, ...] = ()
    trusted_networks: tuple[str, ...] = ()
    created_at: datetime | None = None
    #: recipients without recorded consent are refused (NOT_ALLOWED) except in consent mail
    require_consent: bool = False
    #: where tracking and unsubscribe links point (None: `[http] public_url`)
    tracking_base_url: str | None = None
    #: defaults when a message's headers do not say (dialect headers win)
    track_opens: bool = False
    track_clicks: bool = False
    #: List-Unsubscribe on every message, not only bulk (campaign) mail
    list_unsubscribe: bool = False


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: only its hash and a short display prefix, never the key."""

    id: str
    account_id: str
    prefix: str
    scopes: tuple[str, ...] = ("send", "read")
    created_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Suppression:
    account_id: str
    address: str
    reason: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What the submission step hands to the store to enqueue (durably, before any 2xx/250)."""

    id: str
    account_id: str
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes
    header_from: str = ""
    subject: str = ""
    message_id_header: str = ""
    source: str = "smtp"
    client_ip: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    not_before: datetime | None = None
    #: A large message's remainder, in a spool file: the full message is `raw` followed by the
    #: file's bytes. The store copies it in chunks, so memory stays bounded for 20 MB messages.
    body_path: str | None = None
    #: where in `body_path` the remainder starts (the part before it was rewritten into `raw`)
    body_offset: int = 0
    #: per-recipient schedule (lowercased address → aware time), e.g. SendGrid `send_each_at`
    recipient_not_before: dict[str, datetime] = field(default_factory=dict)

    @property
    def size(self) -> int:
        import os

        extra = os.path.getsize(self.body_path) - self.body_offset if self.body_path else 0
        return len(self.raw) + extra


@dataclass(frozen=True, slots=True)
class RecipientRecord:
    id: int
    message_id: str
    address: str
    domain: str
    status: RecipientStatus
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_reply: str | None = None
    remote_host: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str
    account_id: str
    mail_from: str
    header_from: str
    subject: str
    message_id_header: str
    size: int
    source: str
    client_ip: str
    options: dict[str, Any]
    created_at: datetime
    not_before: datetime | None
    recipients: tuple[RecipientRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: EventType
    message_id: str | None
    recipient: str | None
    at: datetime
    attempt: int | None = None
    remote_host: str | None = None
    reply: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Claim:
    """One leased recipient handed to a delivery worker; the lease expires at lease_until."""

    recipient_id: int
    message_id: str
    account_id: str
    mail_from: str
    address: str
    domain: str
    attempts: int
    created_at: datetime
    lease_until: datetime
    #: a scheduled message's send time (None: send at once)
    not_before: datetime | None = None

    @property
    def due_since(self) -> datetime:
        """Where the expiry clock starts: a message scheduled for later has not been
        waiting while it waited for its time."""
        if self.not_before is not None and self.not_before > self.created_at:
            return self.not_before
        return self.created_at


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file-cache entry (data only when asked for)."""

    key: str
    account_id: str
    name: str
    content_type: str
    size: int
    created_at: datetime
    expires_at: datetime
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    account_id: str
    name: str
    subject: str
    html: str
    text: str
    attachments: tuple[str, ...] = ()
    #: what a variable missing from the merge data becomes: "error" (INVALID_DATA) or "empty"
    missing_policy: str = "error"
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Consent:
    account_id: str
    address: str
    granted_at: datetime
    ip: str
    source: str
