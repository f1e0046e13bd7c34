"""Tables of the mail itself: messages (and the chunks of large ones), their recipients with
their delivery state, and the event log (part of store/schema.py).

`recipients.next_attempt_at` is always set for pending rows (acceptance time for `queued`),
because PostgreSQL and SQLite sort NULLs differently and the claim query orders by it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

from postroom.store.schema_types import ID, UTCDateTime, metadata
from postroom.store.xact import current_xact_id

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
