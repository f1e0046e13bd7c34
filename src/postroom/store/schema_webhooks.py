"""Tables of events going out: webhook endpoints, account signing secrets, the durable
deliveries with their attempts, and the dispatcher's cursor in the event log (part of
store/schema.py)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table, Text

from postroom.store.schema_types import ID, UTCDateTime, metadata

#: Account webhooks. `secret` signs every delivery; during a rotation `previous_secret` stays
#: valid (deliveries carry both signatures) until `previous_secret_until`.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(ID), nullable=False, index=True),
    Column("url", String(2000), nullable=False),
    Column("event_types", JSON, nullable=False),  # [] = every type
    Column("batch_size", Integer, nullable=False),
    Column("description", String(200), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("previous_secret", String(100)),
    Column("previous_secret_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
)

#: The secret that signs per-message notify/tracking URL reports of an account (made on first
#: use, shown when rotated), with the same two-secret rotation as webhooks.
webhook_account_secrets = Table(
    "webhook_account_secrets",
    metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("secret", String(100), nullable=False),
    Column("previous_secret", String(100)),
    Column("previous_secret_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)

#: Durable outgoing POSTs, one per (target, batch of events). The id is the idempotency id the
#: receiver sees on every attempt. `endpoint` groups deliveries for per-endpoint concurrency.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(ID), nullable=False),
    Column("webhook_id", String(ID)),  # None: a per-message notify/tracking URL
    Column("kind", String(20), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("endpoint", String(300), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("body", Text, nullable=False),
    Column("event_ids", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("give_up_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "status", "next_attempt_at"),
    Index(None, "webhook_id", "id"),
)

#: Every attempt of every delivery, for `GET /v1/webhooks/{id}/deliveries`.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("delivery_id", String(ID), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
)

#: Where the dispatcher stands in the event log: events up to `position` are turned into
#: deliveries, except the ids in `gaps` ([id, first seen (unix s)]): ids that a transaction
#: still open (PostgreSQL) may yet commit, looked at again until they are old.
webhook_cursor = Table(
    "webhook_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("gaps", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
