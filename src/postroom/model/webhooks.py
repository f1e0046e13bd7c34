"""Records of events going out: webhook endpoints, durable deliveries and their attempts.

The store builds them from rows; `postroom.events` plans deliveries (`NewDelivery`) from the
event log and reports each HTTP attempt back (`AttemptOutcome`). Times are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DeliveryStatus(StrEnum):
    #: waiting for its first or next attempt
    PENDING = "pending"
    #: the receiver answered 2xx (terminal)
    SUCCEEDED = "succeeded"
    #: a 4xx that retrying cannot fix, or still failing at give_up_at (terminal)
    FAILED = "failed"
    #: its webhook was deleted before it succeeded (terminal)
    CANCELLED = "cancelled"


class DeliveryKind(StrEnum):
    WEBHOOK = "webhook"  # an account webhook: Postroom's own JSON
    NOTIFY = "notify"  # a message's notify URL: an Infobip-style delivery report
    TRACKING = "tracking"  # a message's tracking URL: an Infobip-style tracking report


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    account_id: str
    url: str
    #: event types sent; empty means every type
    event_types: tuple[str, ...] = ()
    #: events per POST (1: one event each)
    batch_size: int = 1
    description: str = ""
    created_at: datetime | None = None
    #: until when the secret before the last rotation still signs deliveries (None: no rotation)
    previous_secret_until: datetime | None = None

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One POST to make, as planned by the dispatcher from a pass over the event log."""

    account_id: str
    kind: DeliveryKind
    url: str
    content_type: str
    body: str
    event_ids: tuple[int, ...]
    webhook_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """A leased delivery handed to a sender, with the secrets it is signed with (newest first)."""

    id: str
    url: str
    endpoint: str
    content_type: str
    body: str
    event_ids: tuple[int, ...]
    attempts: int
    created_at: datetime
    give_up_at: datetime
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one HTTP attempt did, and what follows: done, retry at next_attempt_at, or give up."""

    delivery_id: str
    attempt: int
    at: datetime
    duration_ms: int
    status: DeliveryStatus
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery as the API and CLI show it."""

    id: str
    webhook_id: str | None
    kind: str
    url: str
    status: DeliveryStatus
    attempts: int
    event_ids: tuple[int, ...]
    created_at: datetime
    updated_at: datetime
    give_up_at: datetime
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    history: tuple[Attempt, ...] = ()
