"""Index suppressions by (account_id, created_at) for incremental cache refreshes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_suppressions_account_created", "suppressions", ["account_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_suppressions_account_created", table_name="suppressions")
