"""Tables of accounts and what belongs to them: API keys, suppressions, daily usage, the DKIM
keys of sender domains, and the server's own secrets (part of store/schema.py)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

from postroom.store.schema_types import ID, UTCDateTime, metadata

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
