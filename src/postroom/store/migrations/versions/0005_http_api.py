"""HTTP API: idempotency keys, file cache, templates, consents; accounts.require_consent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("account_id", "key"),
    )
    op.create_table(
        "files",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_files_account_id", "files", ["account_id"])
    op.create_table(
        "templates",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("missing_policy", sa.String(20), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_templates_account_id", "templates", ["account_id"])
    op.create_table(
        "consents",
        sa.Column("account_id", sa.String(26), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        _ts("granted_at"),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "address"),
    )
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("require_consent", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("require_consent")
    for table in ("consents", "templates", "files", "idempotency_keys"):
        op.drop_table(table)
