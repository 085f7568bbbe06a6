"""The schema as SQLAlchemy Core tables: the single source the migrations mirror.

Core (not ORM) keeps the hot paths to one cheap statement each. advanced-alchemy's
``DateTimeUTC`` gives timezone-aware UTC datetimes on both databases. Its ``JsonB``
cannot be used: with SQLAlchemy 2.1 attaching it to a table fails
(``sqlalchemy.util.portable_instancemethod`` is gone), so ``JsonB`` here is the same
variant built by hand: JSONB on PostgreSQL, JSON on SQLite.
"""

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy.dialects.postgresql import JSONB

JsonB = sa.JSON().with_variant(JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-numbers an ``INTEGER PRIMARY KEY``; PostgreSQL gets a BIGINT identity.
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def not_sealed(column: str) -> str:
    """PostgreSQL: ``column`` holds no sealed value (``ENCRYPTION=on``), which no search
    can match; the trigram indexes leave those out (migration 0012), and a search names
    the same condition so that the planner can use them."""
    return f"left({column}, 7) <> E'\\x1bcrse1:'"


# The tenant's rule (``domain.tenancy``) as each database can say it (migration 0013):
# PostgreSQL's regular expression; on SQLite ``GLOB`` and lengths, bytes counted so that
# neither a NUL nor a character beyond ASCII passes.
TENANT_CHECKS = {
    "postgresql": "tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'",
    "sqlite": "tenant_id GLOB '[a-z0-9]*' AND tenant_id NOT GLOB '*[^a-z0-9_-]*' "
    "AND length(CAST(tenant_id AS BLOB)) BETWEEN 1 AND 63 "
    "AND length(tenant_id) = length(CAST(tenant_id AS BLOB))",
}


def _tenant(*, key: bool = False) -> list[sa.schema.SchemaItem]:
    """``tenant_id``: whose row it is (ADR 0032; migration 0013), first of the primary key
    when ``key``. The constant default names the default tenant, so a writer that names
    none writes there."""
    return [
        sa.Column(
            "tenant_id", sa.String(63), primary_key=key, nullable=False, server_default="default"
        ),
        *(
            sa.CheckConstraint(condition, name="tenant").ddl_if(dialect=dialect)
            for dialect, condition in TENANT_CHECKS.items()
        ),
    ]


def _trigram(table: str, column: str) -> sa.Index:
    """A trigram GIN index for text search, on PostgreSQL only (migrations 0010 and 0012;
    SQLite searches an FTS5 table instead, ``infrastructure.sql.search``)."""
    short = {"evaluations": "evaluations", "evaluation_events": "events"}.get(table, table)
    return sa.Index(
        f"idx_{short}_{column}_trgm",
        column,
        postgresql_using="gin",
        postgresql_ops={column: "gin_trgm_ops"},
        postgresql_where=sa.text(not_sealed(column)),
    ).ddl_if(dialect="postgresql")


evaluations = sa.Table(
    "evaluations",
    metadata,
    sa.Column("id", sa.String(255), nullable=False),
    *_tenant(),
    # Two tenants may hold the same id (migration 0015).
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.Column("code", sa.Text(), nullable=False),
    sa.Column("language", sa.String(50), nullable=False, server_default="python"),
    sa.Column("status", sa.String(50), nullable=False),
    # Full text when inline, the preview when the payload lives in the blob store.
    sa.Column("output", sa.Text()),
    sa.Column("error", sa.Text()),
    sa.Column("created_at", DateTimeUTC(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", DateTimeUTC(), nullable=False, server_default=sa.func.now()),
    sa.Column("started_at", DateTimeUTC()),
    sa.Column("completed_at", DateTimeUTC()),
    sa.Column("runtime_ms", sa.Integer()),
    sa.Column("metadata", JsonB, nullable=False, server_default="{}"),
    sa.Column("output_location", sa.String(50)),
    sa.Column("output_size", sa.BigInteger()),
    sa.Column("output_compressed", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("output_key", sa.String(512)),
    sa.Column("error_location", sa.String(50)),
    sa.Column("error_size", sa.BigInteger()),
    sa.Column("error_compressed", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("error_key", sa.String(512)),
    # The last characters of a blob-stored output or error, for search (migration 0010).
    sa.Column("output_tail", sa.Text()),
    sa.Column("error_tail", sa.Text()),
    sa.Column("celery_task_id", sa.String(255)),
    sa.Column("retries", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("executor_id", sa.String(255)),
    sa.Column("container_id", sa.String(255)),
    # What the platform's workers report beside the status (migration 0005).
    sa.Column("exit_code", sa.Integer()),
    sa.Column("timeout", sa.Integer()),
    sa.Column("last_update", DateTimeUTC()),
    sa.Column("retry_message", sa.Text()),
    sa.Column("final_failure", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("deleted_at", DateTimeUTC()),
    sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    # Bytes of log appended so far: the atomic counter that places each chunk.
    sa.Column("log_size", sa.BigInteger(), nullable=False, server_default="0"),
    # Events of this record, kept by a trigger (migration 0003) for the statistics counters.
    sa.Column("event_count", sa.BigInteger(), nullable=False, server_default="0"),
    # Every b-tree below leads with the tenant: one tenant's page, count or range is a
    # range of its own (migration 0013).
    # A filtered page walks its filter's index in page order (live records only).
    *(
        sa.Index(
            f"idx_evaluations_live_{column}",
            "tenant_id",
            column,
            sa.text("created_at DESC"),
            sa.text("id DESC"),
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        for column in ("status", "language")
    ),
    # Keyset paging walks (created_at DESC, id DESC) of live records; a ``created_after``
    # total counts a range of it without reading the table (migration 0007).
    sa.Index(
        "idx_evaluations_created_at",
        "tenant_id",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    ),
    # Soft-deleted records only: the storage overview counts them (migration 0006).
    sa.Index(
        "idx_evaluations_deleted",
        "tenant_id",
        "deleted_at",
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
    ),
    # ``id_prefix``: a range of live ids in byte order (PostgreSQL's pattern operators
    # ``~>=~``/``~<~``, whatever the database's collation), migration 0007.
    sa.Index(
        "idx_evaluations_live_id_pattern",
        "tenant_id",
        "id",
        postgresql_ops={"id": "text_pattern_ops"},
        postgresql_include=["created_at"],
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    ),
    *(
        _trigram("evaluations", column)
        for column in ("code", "output", "error", "output_tail", "error_tail")
    ),
    # One data subject's records (``metadata @> {key: subject}``), for erasure (migration
    # 0011); PostgreSQL only.
    sa.Index(
        "idx_evaluations_metadata",
        "metadata",
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql"),
)
# A record that is not soft-deleted: every read but the maintenance jobs' asks for it.
live_evaluations = evaluations.c.deleted_at.is_(None)


def _owning_evaluation() -> list[sa.schema.SchemaItem]:
    """``evaluation_id`` of a row that belongs to one record of its tenant and goes when it
    is purged (the key is the tenant's and the id since migration 0015)."""
    return [
        sa.Column("evaluation_id", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "evaluation_id"],
            ["evaluations.tenant_id", "evaluations.id"],
            ondelete="CASCADE",
        ),
    ]


evaluation_events = sa.Table(
    "evaluation_events",
    metadata,
    sa.Column("id", AutoId, sa.Identity(), primary_key=True),
    *_tenant(),
    *_owning_evaluation(),
    # Client- or server-chosen id that makes a redelivered append a no-op.
    sa.Column("event_id", sa.String(255), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("timestamp", DateTimeUTC(), nullable=False, server_default=sa.func.now()),
    sa.Column("message", sa.Text()),
    sa.Column("metadata", JsonB, nullable=False, server_default="{}"),
    sa.UniqueConstraint(
        "tenant_id", "evaluation_id", "event_id", name="uq_events_evaluation_event"
    ),
    # Serves the timeline read: one evaluation, in (timestamp, id) order.
    sa.Index("idx_events_evaluation_id", "tenant_id", "evaluation_id", "timestamp", "id"),
    sa.Index("idx_events_timestamp", sa.text("timestamp DESC")),
    _trigram("evaluation_events", "message"),
)

log_chunks = sa.Table(
    "log_chunks",
    metadata,
    sa.Column("id", AutoId, sa.Identity(), primary_key=True),
    *_tenant(),
    *_owning_evaluation(),
    sa.Column("start_offset", sa.BigInteger(), nullable=False),
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("created_at", DateTimeUTC(), nullable=False, server_default=sa.func.now()),
    # Also the index that serves reads by (tenant_id, evaluation_id, offset).
    sa.UniqueConstraint(
        "tenant_id", "evaluation_id", "start_offset", name="uq_log_chunks_evaluation_offset"
    ),
    _trigram("log_chunks", "content"),
)

# Append-only (a trigger refuses UPDATE and DELETE); no foreign key, so the trail
# outlives the records it describes.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", AutoId, sa.Identity(), primary_key=True),
    *_tenant(),
    sa.Column("at", DateTimeUTC(), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("evaluation_id", sa.String(255)),
    sa.Column("fields", JsonB, nullable=False, server_default="[]"),
    sa.Column("sizes", JsonB, nullable=False, server_default="{}"),
    sa.Column("request_id", sa.String(128)),
    # What the change feed reads (migration 0009): the record's status and version after
    # the change, and the writing transaction's id on PostgreSQL (0 on SQLite).
    sa.Column("status", sa.String(50)),
    sa.Column("version", sa.BigInteger()),
    sa.Column("txid", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Index("idx_audit_log_feed", "tenant_id", "txid", "id"),
    # Keyset pages (id DESC) filtered by evaluation, actor or action, of one tenant.
    sa.Index("idx_audit_log_evaluation_id", "tenant_id", "evaluation_id", "id"),
    sa.Index("idx_audit_log_actor", "tenant_id", "actor", "id"),
    sa.Index("idx_audit_log_action", "tenant_id", "action", "id"),
    sa.Index("idx_audit_log_at", "at"),
)

# The answers of ``Idempotency-Key`` requests, per tenant, caller and key (migrations 0008
# and 0015); a row without ``status`` is in flight. Expired rows go in batches by
# ``expires_at``.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    *_tenant(key=True),
    sa.Column("caller", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("status", sa.Integer()),
    sa.Column("headers", JsonB),
    sa.Column("body", sa.LargeBinary()),
    sa.Column("expires_at", DateTimeUTC(), nullable=False),
    sa.Column("lease_until", DateTimeUTC(), nullable=False),
    sa.Index("idx_idempotency_keys_expires_at", "expires_at"),
)

# Statistics of live records, kept by triggers in the transaction of every write
# (migration 0003): per tenant, (status, language) and shard (migration 0013), summed on read.
COUNTER_NAMES = (
    "evaluations",
    "runtime_count",
    "runtime_sum",
    "inline_payloads",
    "inline_bytes",
    "file_payloads",
    "file_bytes",
    "s3_payloads",
    "s3_bytes",
    "log_bytes",
    "events",
)
evaluation_counters = sa.Table(
    "evaluation_counters",
    metadata,
    *_tenant(key=True),
    sa.Column("status", sa.String(50), primary_key=True),
    sa.Column("language", sa.String(50), primary_key=True),
    sa.Column("shard", sa.SmallInteger(), primary_key=True),
    *(
        sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
        for name in COUNTER_NAMES
    ),
)

# How many live records have each runtime, bucketed since migration 0006 (ADR 0017): one
# row per millisecond below 1,024 ms, then 128 buckets per power of two (each under 0.8 %
# of its runtimes wide), keyed by their lower bound; percentiles without sorting the records.
# One histogram per tenant (migration 0013).
evaluation_runtimes = sa.Table(
    "evaluation_runtimes",
    metadata,
    *_tenant(key=True),
    sa.Column("runtime_ms", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("count", sa.BigInteger(), nullable=False, server_default="0"),
)

# Failover-journal entries the primary already holds, each marked in the transaction
# of the change it stands for, so a replayed entry is a no-op (exactly once).
journal_applied = sa.Table(
    "journal_applied",
    metadata,
    sa.Column("entry_id", sa.String(64), primary_key=True),
    *_tenant(),
    sa.Column("applied_at", DateTimeUTC(), nullable=False, server_default=sa.func.now()),
)

# Crypto-shredding's evaluation keys (ADR 0033; migration 0014): one random key per
# evaluation, wrapped by the key-encryption key ``kid`` and bound to
# ``evaluation_keys|<id>``. No foreign key: a key is made before its record commits (a blob
# is sealed under it first), and erasure removes it before the record.
evaluation_keys = sa.Table(
    "evaluation_keys",
    metadata,
    *_tenant(key=True),
    sa.Column("evaluation_id", sa.String(255), primary_key=True),
    sa.Column("kid", sa.String(64), nullable=False),
    sa.Column("wrapped", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", DateTimeUTC(), nullable=False, server_default=sa.func.now()),
)

ALL_TABLES = (
    evaluations,
    evaluation_events,
    log_chunks,
    audit_log,
    evaluation_counters,
    evaluation_runtimes,
    journal_applied,
    idempotency_keys,
    evaluation_keys,
)
