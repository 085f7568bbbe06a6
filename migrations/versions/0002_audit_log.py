"""The append-only audit trail.

PostgreSQL and SQLite each get a trigger that refuses UPDATE and DELETE, so the
trail cannot be rewritten through the service's own connection.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 00:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

PG_FUNCTION = """
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$
"""
PG_TRIGGER = """
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only()
"""
SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
    """
    for verb in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", AutoId, sa.Identity(), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("evaluation_id", sa.String(255)),
        sa.Column("fields", Json, nullable=False, server_default="[]"),
        sa.Column("sizes", Json, nullable=False, server_default="{}"),
        sa.Column("request_id", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("idx_audit_log_evaluation_id", "audit_log", ["evaluation_id", "id"])
    op.create_index("idx_audit_log_actor", "audit_log", ["actor", "id"])
    op.create_index("idx_audit_log_action", "audit_log", ["action", "id"])
    op.create_index("idx_audit_log_at", "audit_log", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_is_append_only()")
