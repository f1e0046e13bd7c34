"""The schema of record: every table the store owns, as SQLAlchemy Core metadata.

Migrations in `store/migrations/versions/` must produce exactly this (a test compares them with
Alembic's autogenerate on SQLite and PostgreSQL). Change this file and add a migration together.

Notes on choices:
- Times use `UTCDateTime`: callers always get timezone-aware UTC datetimes back, although
  SQLite stores naive text. Because every stored value is naive UTC in one fixed format, string
  comparison on SQLite orders the same way as time, so `next_attempt_at <= :now` works.
- Foreign keys exist only where a dangling row would be a bug in the store itself
  (`api_keys.account_id`, `recipients.message_id`); messages, events, usage and suppressions
  name an account or message by id without a constraint, so that events about unknown
  messages (tracking hits) and tests of other stages need no setup rows.
- `recipients.next_attempt_at` is always set for pending rows (acceptance time for `queued`),
  because PostgreSQL and SQLite sort NULLs differently and the claim query orders by it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from postroom.store.xact import current_xact_id

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

ID = 26  # length of postroom.model.new_id()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; naive UTC on SQLite, timestamptz on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw text from SQLite in a textual query
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


accounts = Table(
    "accounts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("sender_domains", JSON, nullable=False),
    Column("sender_addresses", JSON, nullable=False),
    Column("bounce_address", String(320)),
    Column("daily_limit", Integer),
    Column("allow_ips", JSON, nullable=False),
    Column("trusted_networks", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("require_consent", Boolean, nullable=False, server_default=false()),
    Column("tracking_base_url", String(500)),
    Column("track_opens", Boolean, nullable=False, server_default=false()),
    Column("track_clicks", Boolean, nullable=False, server_default=false()),
    Column("list_unsubscribe", Boolean, nullable=False, server_default=false()),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(ID), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("key_hash", String(200), nullable=False, unique=True),
    Column("prefix", String(64), nullable=False, index=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("account_id", String(ID), nullable=False),
    Column("address", String(320), nullable=False),  # lowercased
    Column("reason", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "address"),
    # submission's in-memory suppression cache reads what changed since its last look
    Index("ix_suppressions_account_created", "account_id", "created_at"),
)

#: Bodies of large messages, in 1 MiB pieces (see NewMessage.body_path); `messages.raw` holds
#: the first part. Kept apart so that copying a 20 MB message never needs 20 MB of memory.
message_chunks = Table(
    "message_chunks",
    metadata,
    Column("message_id", String(ID), ForeignKey("messages.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("message_id", "seq"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(ID), nullable=False),
    Column("mail_from", String(320), nullable=False),
    Column("header_from", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("message_id_header", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("source", String(20), nullable=False),
    Column("client_ip", String(64), nullable=False),
    Column("options", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("not_before", UTCDateTime),
    Index(None, "account_id", "id"),
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("message_id", String(ID), ForeignKey("messages.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("address", String(320), nullable=False),
    Column("domain", String(255), nullable=False),  # no index: no query needs one (0008)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("last_reply", Text),
    Column("remote_host", String(255)),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "status", "next_attempt_at"),
    # only leased rows, the only ones release_leases can look for (0008)
    Index("ix_recipients_lease_owner", "lease_owner", sqlite_where=text("lease_owner IS NOT NULL"),
          postgresql_where=text("lease_owner IS NOT NULL")),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("type", String(32), nullable=False),
    Column("message_id", String(ID), index=True),
    Column("recipient", String(320)),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("attempt", Integer),
    Column("remote_host", String(255)),
    Column("reply", Text),
    Column("data", JSON, nullable=False),
    # PostgreSQL: the writing transaction, the HTTP events cursor's order (store/xact.py, 0009);
    # rows older than 0009 hold 0. SQLite: NULL, so the index stays empty there.
    Column("xact_id", BigInteger, server_default=current_xact_id()),
    Index("ix_events_xact_id_id", "xact_id", "id", sqlite_where=text("xact_id IS NOT NULL"),
          postgresql_where=text("xact_id IS NOT NULL")),
)

account_usage = Table(
    "account_usage",
    metadata,
    Column("account_id", String(ID), nullable=False),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD, UTC
    Column("count", Integer, nullable=False),
    PrimaryKeyConstraint("account_id", "day"),
)

#: DKIM keys of sender domains (`postroom domains add`): delivery signs mail whose header From
#: is in `domain` with this key. One key per domain; the PEM is stored as text.
dkim_keys = Table(
    "dkim_keys",
    metadata,
    Column("domain", String(255), primary_key=True),  # lowercased
    Column("selector", String(63), nullable=False),
    Column("algorithm", String(20), nullable=False),
    Column("private_key", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

#: Server-side secrets shared by every process on the store (VERP signing, ...), created on
#: first use so that several processes agree on one value.
secrets = Table(
    "secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# --- HTTP API (files, templates, idempotency, consent) -----------------------------------------

#: `Idempotency-Key` answers: a row is claimed (status 0) before a request is processed and
#: filled with the response after, so a repeat within 24 h gets the first answer and sends nothing.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(ID), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "key"),
)

#: The file cache: attachments uploaded once and named by key (HTTP attachments[].id and
#: ZeptoMail's X-TM-FILE-KEY over SMTP).
files = Table(
    "files",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("account_id", String(ID), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

templates = Table(
    "templates",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(ID), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("attachments", JSON, nullable=False),
    Column("missing_policy", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("account_id", String(ID), nullable=False),
    Column("address", String(320), nullable=False),  # lowercased
    Column("granted_at", UTCDateTime, nullable=False),
    Column("ip", String(64), nullable=False),
    Column("source", String(50), nullable=False),
    PrimaryKeyConstraint("account_id", "address"),
)

# --- webhooks (events out) ---------------------------------------------------------------------

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
