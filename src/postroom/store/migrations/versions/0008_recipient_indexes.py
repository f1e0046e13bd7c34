"""Recipient indexes that every enqueue and outcome paid for without a query that needs them.

- `ix_recipients_domain`: no query filters or sorts recipients by domain; each accepted
  recipient still wrote an entry into it at a spot chosen by its domain (a page per domain
  touched in every group commit).
- `ix_recipients_lease_owner` becomes partial (`WHERE lease_owner IS NOT NULL`): only
  `release_leases` looks recipients up by owner, and only leased rows can match; accepted and
  finished recipients (NULL owner) no longer have an entry.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LEASED = sa.text("lease_owner IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_recipients_domain", table_name="recipients")
    op.drop_index("ix_recipients_lease_owner", table_name="recipients")
    op.create_index("ix_recipients_lease_owner", "recipients", ["lease_owner"],
                    sqlite_where=LEASED, postgresql_where=LEASED)


def downgrade() -> None:
    op.drop_index("ix_recipients_lease_owner", table_name="recipients")
    op.create_index("ix_recipients_lease_owner", "recipients", ["lease_owner"])
    op.create_index("ix_recipients_domain", "recipients", ["domain"])
