"""events.xact_id: the writing transaction of each event (PostgreSQL), for a safe HTTP cursor.

On PostgreSQL an event id is taken before commit, so ids can commit out of order and a reader
paging by id can pass over an event that commits later. `GET /v1/events` now orders by
(xact_id, id) and serves only events whose transaction has ended (store/xact.py).

PostgreSQL: the column is added with a constant default first, which PG 11+ records once
instead of rewriting the table, so every existing row reads 0 (ordered before anything new, in
id order as before; all were committed: ADD COLUMN waits for the transactions that wrote
them); then the default becomes the writing transaction's id for rows written from now on.
SQLite has one writer, so ids are commit order: the column stays NULL there, and the index is
partial on `xact_id IS NOT NULL` so that it stays empty and costs SQLite's inserts nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WRITTEN = sa.text("xact_id IS NOT NULL")
CURRENT_XACT_ID = sa.text("(pg_current_xact_id()::text)::bigint")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("events", sa.Column("xact_id", sa.BigInteger(), nullable=True,
                                          server_default=sa.text("0")))
        op.alter_column("events", "xact_id", server_default=CURRENT_XACT_ID)
    else:
        op.add_column("events", sa.Column("xact_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_events_xact_id_id", "events", ["xact_id", "id"],
                    sqlite_where=WRITTEN, postgresql_where=WRITTEN)


def downgrade() -> None:
    op.drop_index("ix_events_xact_id_id", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("xact_id")
