"""The answers of ``Idempotency-Key`` requests.

A client that retries a write (a lost response, a timeout) sends the same
``Idempotency-Key``; the service answers the stored response again instead of
writing twice. A row per (caller, key): in flight while its request runs (no
``status`` yet, ``lease_until`` bounds how long a dead request holds it), then the
answer (status, headers, body) and the request's fingerprint, kept until
``expires_at`` (``IDEMPOTENCY_TTL_S``). Expired rows are deleted in batches by the
index on ``expires_at``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 00:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"

Timestamp = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(100), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("status", sa.Integer()),
        sa.Column("headers", Json),
        sa.Column("body", sa.LargeBinary()),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("lease_until", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("caller", "key", name="pk_idempotency_keys"),
    )
    op.create_index("idx_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_index("idx_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
