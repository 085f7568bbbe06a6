"""What the platform's workers report beside a status.

The Celery tasks and the storage worker send ``exit_code``, ``timeout``,
``last_update``, ``retry_message`` and ``final_failure`` with their updates;
each gets a column so it comes back where the platform reads it (the record,
``/logs``, the running list) instead of being dropped.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 00:00:00
"""

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (table copy) on SQLite would drop the counters' triggers.
    op.add_column("evaluations", sa.Column("exit_code", sa.Integer()))
    op.add_column("evaluations", sa.Column("timeout", sa.Integer()))
    op.add_column("evaluations", sa.Column("last_update", DateTimeUTC()))
    op.add_column("evaluations", sa.Column("retry_message", sa.Text()))
    op.add_column(
        "evaluations",
        sa.Column("final_failure", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    for column in ("final_failure", "retry_message", "last_update", "timeout", "exit_code"):
        op.drop_column("evaluations", column)
