"""Webhooks: endpoints, account signing secrets, durable deliveries, attempts, dispatch cursor.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _secrets() -> list[sa.Column]:
    return [sa.Column("secret", sa.String(100), nullable=False),
            sa.Column("previous_secret", sa.String(100), nullable=True),
            _ts("previous_secret_until", True)]


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        *_secrets(),
        _ts("created_at"),
        _ts("deleted_at", True),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
    )
    op.create_index("ix_webhooks_account_id", "webhooks", ["account_id"])
    op.create_table(
        "webhook_account_secrets",
        sa.Column("account_id", sa.String(26), nullable=False),
        *_secrets(),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("account_id", name="pk_webhook_account_secrets"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("webhook_id", sa.String(26), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("endpoint", sa.String(300), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("event_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", True),
        _ts("give_up_at"),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _ts("lease_until", True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    )
    op.create_index("ix_webhook_deliveries_status_next_attempt_at", "webhook_deliveries",
                    ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_webhook_id_id", "webhook_deliveries",
                    ["webhook_id", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(26), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _ts("at"),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])
    op.create_table(
        "webhook_cursor",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name", name="pk_webhook_cursor"),
    )
    _start_cursor_at_the_end()


def _start_cursor_at_the_end() -> None:
    """Events logged before webhooks existed are history, not news: never send them."""
    bind = op.get_bind()
    top = bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM events")).scalar()
    now = datetime.now(UTC)
    cursor = sa.table("webhook_cursor", sa.column("name", sa.String), sa.column("position"),
                      sa.column("gaps", sa.JSON), sa.column("version"),
                      sa.column("updated_at", sa.DateTime(timezone=True)))
    op.bulk_insert(cursor, [{
        "name": "events", "position": int(top or 0), "gaps": [], "version": 0,
        "updated_at": now.replace(tzinfo=None) if bind.dialect.name == "sqlite" else now,
    }])


def downgrade() -> None:
    for table in ("webhook_cursor", "webhook_attempts", "webhook_deliveries",
                  "webhook_account_secrets", "webhooks"):
        op.drop_table(table)
