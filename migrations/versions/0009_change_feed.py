"""The change feed over the audit trail.

Every write already appends its audit entry in its own transaction: the entry is the
outbox. The feed needs three more columns there: the record's ``status`` and
``version`` after the change, and ``txid``, the id of the writing transaction on
PostgreSQL (``pg_current_xact_id()``; 0 on SQLite, whose writers are serialized, and
for the entries written before this revision). A reader returns only the entries of
transactions older than every transaction still running, in ``(txid, id)`` order, so
an entry that commits late can never land behind a cursor already handed out.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"

# A full transaction id (epoch and xid) fits a BIGINT; a plain BIGINT keeps both databases alike.
PG_TXID_DEFAULT = (
    "ALTER TABLE audit_log ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint"
)


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("status", sa.String(50)))
    op.add_column("audit_log", sa.Column("version", sa.BigInteger()))
    op.add_column(
        "audit_log", sa.Column("txid", sa.BigInteger(), nullable=False, server_default="0")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_TXID_DEFAULT)
    op.create_index("idx_audit_log_feed", "audit_log", ["txid", "id"])


def downgrade() -> None:
    op.drop_index("idx_audit_log_feed", table_name="audit_log")
    # Plain DROP COLUMN (SQLite >= 3.35): a rebuilt table would lose the append-only triggers.
    for column in ("txid", "version", "status"):
        op.drop_column("audit_log", column)
