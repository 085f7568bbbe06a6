"""The key table of crypto-shredding (ADR 0033).

``evaluation_keys`` holds one random 256-bit key per evaluation, wrapped by a
key-encryption key (``kid``) and bound to ``evaluation_keys|<id>``; what is copied out of
the database (blobs, the journal, the mirror, the cache) is sealed under it, and an
erasure deletes it first. It carries ``tenant_id`` as migration 0013 gave every table
(``VARCHAR(63)``, the constant default ``'default'``, the same ``CHECK`` named
``ck_evaluation_keys_tenant``), and its key leads with the tenant, as 0013 built the
b-trees that serve a lookup: ``(tenant_id, evaluation_id)``, so the later migration that
keys the other tables by ``(tenant_id, id)`` has nothing to change here. No foreign key to
``evaluations``: a key is committed before its record (the record's blob is sealed under
it first), and outlives nothing but an orphan.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 23:10:00
"""

import importlib

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"

_tenants = importlib.import_module("migrations.versions.0013_tenant_columns")


def upgrade() -> None:
    op.create_table(
        "evaluation_keys",
        sa.Column(
            "tenant_id",
            sa.String(63),
            sa.CheckConstraint(_tenants.check(), name="tenant"),
            nullable=False,
            server_default=_tenants.DEFAULT,
        ),
        sa.Column("evaluation_id", sa.String(255), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", DateTimeUTC(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "evaluation_id", name="pk_evaluation_keys"),
    )


def downgrade() -> None:
    op.drop_table("evaluation_keys")
