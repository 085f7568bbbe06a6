"""Exactly-once marks of the failover journal.

While the primary is unreachable, writes go to the failover journal; replaying it
after a failover must apply every entry once, even when a replay is interrupted
and started again. ``journal_applied`` holds the id of each entry the primary
already has, written in the same transaction as the change itself, so an entry is
either applied and marked or neither, and a replay skips the marked ones. Marks
are dropped once their journal segment is gone. A plain table (no trigger, unlike
``audit_log``): rows are inserted, read and deleted, the same on SQLite and
PostgreSQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "journal_applied",
        sa.Column("entry_id", sa.String(64), nullable=False),
        sa.Column("applied_at", Timestamp, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("entry_id", name="pk_journal_applied"),
    )


def downgrade() -> None:
    op.drop_table("journal_applied")
