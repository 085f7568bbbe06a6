"""Initial schema: evaluations, evaluation_events, log_chunks.

Written by hand to mirror ``infrastructure.sql.tables`` while staying frozen:
later changes to the tables need a new revision, never an edit here.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

# Columns whose large values PostgreSQL compresses in TOAST with lz4 (faster than pglz).
LZ4_COLUMNS = ("code", "output", "error")


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("language", sa.String(50), nullable=False, server_default="python"),
        sa.Column("status", sa.String(50), nullable=False),
        sa.Column("output", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", Timestamp),
        sa.Column("completed_at", Timestamp),
        sa.Column("runtime_ms", sa.Integer()),
        sa.Column("metadata", Json, nullable=False, server_default="{}"),
        sa.Column("output_location", sa.String(50)),
        sa.Column("output_size", sa.BigInteger()),
        sa.Column("output_compressed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("output_key", sa.String(512)),
        sa.Column("error_location", sa.String(50)),
        sa.Column("error_size", sa.BigInteger()),
        sa.Column("error_compressed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("error_key", sa.String(512)),
        sa.Column("celery_task_id", sa.String(255)),
        sa.Column("retries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("executor_id", sa.String(255)),
        sa.Column("container_id", sa.String(255)),
        sa.Column("deleted_at", Timestamp),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("log_size", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
    )
    op.create_index("idx_evaluations_status", "evaluations", ["status"])
    op.create_index("idx_evaluations_language", "evaluations", ["language"])
    op.create_index(
        "idx_evaluations_created_at",
        "evaluations",
        [sa.text("created_at DESC"), sa.text("id DESC")],
    )

    op.create_table(
        "evaluation_events",
        sa.Column("id", AutoId, sa.Identity(), nullable=False),
        sa.Column("evaluation_id", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("timestamp", Timestamp, nullable=False, server_default=sa.func.now()),
        sa.Column("message", sa.Text()),
        sa.Column("metadata", Json, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_evaluation_events"),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluations.id"],
            name="fk_evaluation_events_evaluation_id_evaluations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("evaluation_id", "event_id", name="uq_events_evaluation_event"),
    )
    op.create_index(
        "idx_events_evaluation_id", "evaluation_events", ["evaluation_id", "timestamp", "id"]
    )
    op.create_index("idx_events_timestamp", "evaluation_events", [sa.text("timestamp DESC")])

    op.create_table(
        "log_chunks",
        sa.Column("id", AutoId, sa.Identity(), nullable=False),
        sa.Column("evaluation_id", sa.String(255), nullable=False),
        sa.Column("start_offset", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_log_chunks"),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluations.id"],
            name="fk_log_chunks_evaluation_id_evaluations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "evaluation_id", "start_offset", name="uq_log_chunks_evaluation_offset"
        ),
    )

    if op.get_bind().dialect.name == "postgresql":
        for column in LZ4_COLUMNS:
            op.execute(f"ALTER TABLE evaluations ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    op.drop_table("log_chunks")
    op.drop_index("idx_events_timestamp", table_name="evaluation_events")
    op.drop_index("idx_events_evaluation_id", table_name="evaluation_events")
    op.drop_table("evaluation_events")
    op.drop_index("idx_evaluations_created_at", table_name="evaluations")
    op.drop_index("idx_evaluations_language", table_name="evaluations")
    op.drop_index("idx_evaluations_status", table_name="evaluations")
    op.drop_table("evaluations")
