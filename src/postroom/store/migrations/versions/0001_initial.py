"""Initial schema: accounts, keys, suppressions, messages, recipients, events, usage.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in plain SQLAlchemy types (not imported from schema.py) so that later changes to
schema.py cannot silently change what this migration did. `UTCDateTime` in schema.py is a
`DateTime(timezone=True)` underneath, which is what is created here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PK = rowid on SQLite


def _ts(name: str, nullable: bool) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sender_domains", sa.JSON(), nullable=False),
        sa.Column("sender_addresses", sa.JSON(), nullable=False),
        sa.Column("bounce_address", sa.String(320), nullable=True),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        sa.Column("allow_ips", sa.JSON(), nullable=False),
        sa.Column("trusted_networks", sa.JSON(), nullable=False),
        _ts("created_at", False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("name", name="uq_accounts_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("key_hash", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _ts("created_at", False),
        _ts("revoked_at", True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_api_keys_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])

    op.create_table(
        "suppressions",
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        _ts("created_at", False),
        sa.PrimaryKeyConstraint("account_id", "address", name="pk_suppressions"),
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("header_from", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message_id_header", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        _ts("created_at", False),
        _ts("not_before", True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
    )
    op.create_index("ix_messages_account_id_id", "messages", ["account_id", "id"])

    op.create_table(
        "recipients",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(26), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _ts("lease_until", True),
        sa.Column("last_reply", sa.Text(), nullable=True),
        sa.Column("remote_host", sa.String(255), nullable=True),
        _ts("updated_at", False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_recipients_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_recipients"),
    )
    op.create_index("ix_recipients_message_id", "recipients", ["message_id"])
    op.create_index("ix_recipients_domain", "recipients", ["domain"])
    op.create_index("ix_recipients_lease_owner", "recipients", ["lease_owner"])
    op.create_index(
        "ix_recipients_status_next_attempt_at", "recipients", ["status", "next_attempt_at"]
    )

    op.create_table(
        "events",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(26), nullable=True),
        sa.Column("recipient", sa.String(320), nullable=True),
        _ts("at", False),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("remote_host", sa.String(255), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_message_id", "events", ["message_id"])
    op.create_index("ix_events_at", "events", ["at"])

    op.create_table(
        "account_usage",
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", name="pk_account_usage"),
    )


def downgrade() -> None:
    for table in ("account_usage", "events", "recipients", "messages", "suppressions",
                  "api_keys", "accounts"):
        op.drop_table(table)
