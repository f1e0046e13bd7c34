"""Tables behind the HTTP API: idempotency keys, the file cache, templates and consents (part of
store/schema.py)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, LargeBinary, PrimaryKeyConstraint, String, Table, Text

from postroom.store.schema_types import ID, UTCDateTime, metadata

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
