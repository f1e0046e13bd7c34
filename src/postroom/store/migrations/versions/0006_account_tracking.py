"""Per-account tracking defaults and tracking base URL; List-Unsubscribe on all mail.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("tracking_base_url", sa.String(500), nullable=True))
        for name in ("track_opens", "track_clicks", "list_unsubscribe"):
            batch.add_column(sa.Column(name, sa.Boolean(), nullable=False,
                                       server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        for name in ("list_unsubscribe", "track_clicks", "track_opens", "tracking_base_url"):
            batch.drop_column(name)
