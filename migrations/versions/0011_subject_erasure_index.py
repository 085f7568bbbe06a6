"""An index that finds one data subject's evaluations, for erasure (ADR 0029).

PostgreSQL: a GIN index (``jsonb_path_ops``) on ``evaluations.metadata``. It serves
``metadata @> '{"<SUBJECT_METADATA_KEY>": "<subject>"}'`` whatever key the setting
names, so changing the setting needs no new index. SQLite gets none: its erasure
reads the table (the embedded configuration holds what one machine holds).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 17:00:00
"""

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"

INDEX = "idx_evaluations_metadata"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX {INDEX} ON evaluations USING gin (metadata jsonb_path_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
