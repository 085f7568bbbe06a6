"""Maintained statistics counters and the list's partial indexes.

``GET /statistics`` read ten full scans (seconds at a million rows). Now triggers
keep, in the transaction of every write, per (status, language) counters of live
records (``evaluation_counters``), a histogram of runtimes (``evaluation_runtimes``,
exact values, so percentiles stay exact) and each record's number of events
(``evaluations.event_count``). PostgreSQL runs statement-level triggers over
transition tables (one upsert per statement, however many rows: a purge or a COPY
does not update a counter row once per record) and spreads the counter rows over
16 shards by backend, so concurrent writers do not queue on one row. SQLite has
row triggers; it has one writer at a time anyway.

``(status | language, created_at DESC, id DESC) WHERE deleted_at IS NULL`` serve a
filtered first page in index order; they replace the single-column indexes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:00:00
"""

# Every statement below is built from constants of this module (no input reaches them).
# ruff: noqa: S608

import sqlalchemy as sa
from alembic import op

from migrations import counters

revision: str = "0003"
down_revision: str | None = "0002"

_REBUILD = counters.rebuild(counters.exact)


def _pg_function(operation: str) -> str:
    return f"""
CREATE FUNCTION evaluation_counters_{operation}() RETURNS trigger LANGUAGE plpgsql AS $$
{counters.pg_counters_body(operation, counters.exact)}"""


def _pg_events_function(operation: str) -> str:
    sign, table = ("+", "new_rows") if operation == "insert" else ("-", "old_rows")
    return f"""
CREATE FUNCTION evaluation_events_count_{operation}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE evaluations e SET event_count = e.event_count {sign} n.count
    FROM (SELECT evaluation_id, COUNT(*) AS count FROM {table} GROUP BY evaluation_id) n
    WHERE e.id = n.evaluation_id;
    RETURN NULL;
END
$$
"""


_PG_TRIGGERS = [
    ("evaluations", "counters", "insert", "NEW TABLE AS new_rows"),
    ("evaluations", "counters", "update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("evaluations", "counters", "delete", "OLD TABLE AS old_rows"),
    ("evaluation_events", "count", "insert", "NEW TABLE AS new_rows"),
    ("evaluation_events", "count", "delete", "OLD TABLE AS old_rows"),
]


def _pg_upgrade() -> None:
    op.execute(
        "UPDATE evaluations e SET event_count = n.count FROM (SELECT evaluation_id, "
        "COUNT(*) AS count FROM evaluation_events GROUP BY evaluation_id) n "
        "WHERE e.id = n.evaluation_id"
    )
    op.execute(
        "CREATE FUNCTION evaluation_counters_rebuild() RETURNS void LANGUAGE sql AS $$ "
        "UPDATE evaluations e SET event_count = n.count FROM (SELECT evaluation_id, "
        "COUNT(*) AS count FROM evaluation_events GROUP BY evaluation_id) n "
        "WHERE e.id = n.evaluation_id AND e.event_count <> n.count; " + "; ".join(_REBUILD) + " $$"
    )
    op.execute("SELECT evaluation_counters_rebuild()")
    for operation in ("insert", "update", "delete"):
        op.execute(_pg_function(operation))
        op.execute(_pg_events_function(operation) if operation != "update" else "SELECT 1")
    for table, kind, operation, referencing in _PG_TRIGGERS:
        prefix = "evaluation_counters" if kind == "counters" else "evaluation_events_count"
        op.execute(
            f"CREATE TRIGGER {table}_{kind}_{operation} AFTER {operation.upper()} ON {table} "
            f"REFERENCING {referencing} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {prefix}_{operation}()"
        )


_SQLITE_TRIGGERS = {
    **counters.sqlite_counter_triggers(counters.exact),
    "evaluation_events_count_insert": "AFTER INSERT ON evaluation_events BEGIN "
    "UPDATE evaluations SET event_count = event_count + 1 WHERE id = NEW.evaluation_id; END",
    "evaluation_events_count_delete": "AFTER DELETE ON evaluation_events BEGIN "
    "UPDATE evaluations SET event_count = event_count - 1 WHERE id = OLD.evaluation_id; END",
}


def _sqlite_upgrade() -> None:
    op.execute(
        "UPDATE evaluations SET event_count = (SELECT COUNT(*) FROM evaluation_events "
        "WHERE evaluation_events.evaluation_id = evaluations.id)"
    )
    for statement in _REBUILD:
        op.execute(statement)
    for name, body in _SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def upgrade() -> None:
    op.add_column(
        "evaluations",
        sa.Column("event_count", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "evaluation_counters",
        sa.Column("status", sa.String(50), nullable=False),
        sa.Column("language", sa.String(50), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            for name in counters.COUNTERS
        ),
        sa.PrimaryKeyConstraint("status", "language", "shard", name="pk_evaluation_counters"),
    )
    op.create_table(
        "evaluation_runtimes",
        sa.Column("runtime_ms", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("runtime_ms", name="pk_evaluation_runtimes"),
    )
    op.drop_index("idx_evaluations_status", table_name="evaluations")
    op.drop_index("idx_evaluations_language", table_name="evaluations")
    for column in ("status", "language"):
        op.create_index(
            f"idx_evaluations_live_{column}",
            "evaluations",
            [column, sa.text("created_at DESC"), sa.text("id DESC")],
            postgresql_where=sa.text(counters.LIVE),
            sqlite_where=sa.text(counters.LIVE),
        )
    if op.get_bind().dialect.name == "postgresql":
        _pg_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, kind, operation, _ in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER {table}_{kind}_{operation} ON {table}")
        for operation in ("insert", "update", "delete"):
            op.execute(f"DROP FUNCTION evaluation_counters_{operation}()")
        for operation in ("insert", "delete"):
            op.execute(f"DROP FUNCTION evaluation_events_count_{operation}()")
        op.execute("DROP FUNCTION evaluation_counters_rebuild()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    for column in ("status", "language"):
        op.drop_index(f"idx_evaluations_live_{column}", table_name="evaluations")
    op.create_index("idx_evaluations_status", "evaluations", ["status"])
    op.create_index("idx_evaluations_language", "evaluations", ["language"])
    op.drop_table("evaluation_runtimes")
    op.drop_table("evaluation_counters")
    op.drop_column("evaluations", "event_count")
