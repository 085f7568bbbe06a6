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

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARDS = 16
LOCATIONS = ("inline", "file", "s3")
COUNTERS = (
    "evaluations",
    "runtime_count",
    "runtime_sum",
    *(f"{location}_{kind}" for location in LOCATIONS for kind in ("payloads", "bytes")),
    "log_bytes",
    "events",
)
LIVE = "deleted_at IS NULL"


def _contributions(row: str) -> dict[str, str]:
    """What one live ``evaluations`` row adds to each counter."""

    def both(template: str) -> str:
        return " + ".join(template.format(kind=kind) for kind in ("output", "error"))

    values = {
        "evaluations": "1",
        "runtime_count": f"CASE WHEN {row}.runtime_ms IS NOT NULL THEN 1 ELSE 0 END",
        "runtime_sum": f"COALESCE({row}.runtime_ms, 0)",
        "log_bytes": f"{row}.log_size",
        "events": f"{row}.event_count",
    }
    for location in LOCATIONS:
        values[f"{location}_payloads"] = both(
            f"CASE WHEN {row}.{{kind}}_location = '{location}' THEN 1 ELSE 0 END"
        )
        values[f"{location}_bytes"] = both(
            f"CASE WHEN {row}.{{kind}}_location = '{location}' "
            f"THEN COALESCE({row}.{{kind}}_size, 0) ELSE 0 END"
        )
    return {name: values[name] for name in COUNTERS}


_COLUMNS = ", ".join(COUNTERS)
_ADD = ", ".join(f"{name} = evaluation_counters.{name} + excluded.{name}" for name in COUNTERS)
_REBUILD = [
    "DELETE FROM evaluation_counters",
    "DELETE FROM evaluation_runtimes",
    f"INSERT INTO evaluation_counters (status, language, shard, {_COLUMNS}) "
    "SELECT status, language, 0, "
    + ", ".join(f"SUM({value})" for value in _contributions("evaluations").values())
    + f" FROM evaluations WHERE {LIVE} GROUP BY status, language",
    "INSERT INTO evaluation_runtimes (runtime_ms, count) SELECT runtime_ms, COUNT(*) "
    f"FROM evaluations WHERE {LIVE} AND runtime_ms IS NOT NULL GROUP BY runtime_ms",
]


def _pg_function(operation: str) -> str:
    sources = {
        "insert": [("1", "new_rows")],
        "delete": [("-1", "old_rows")],
        "update": [("1", "new_rows"), ("-1", "old_rows")],
    }[operation]
    rows = " UNION ALL ".join(
        f"SELECT {sign} AS sign, r.* FROM {table} r WHERE r.{LIVE}" for sign, table in sources
    )
    signed = ", ".join(
        f"r.sign * ({value}) AS {name}" for name, value in _contributions("r").items()
    )
    sums = ", ".join(f"SUM({name})" for name in COUNTERS)
    changed = " OR ".join(f"SUM({name}) <> 0" for name in COUNTERS)
    return f"""
CREATE FUNCTION evaluation_counters_{operation}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS ({rows}),
    changed AS (SELECT r.status, r.language, r.runtime_ms, r.sign, {signed} FROM moved r),
    counted AS (
        INSERT INTO evaluation_counters (status, language, shard, {_COLUMNS})
        SELECT status, language, pg_backend_pid() % {SHARDS}, {sums}
        FROM changed GROUP BY status, language HAVING {changed}
        ON CONFLICT (status, language, shard) DO UPDATE SET {_ADD}
    )
    INSERT INTO evaluation_runtimes (runtime_ms, count)
    SELECT runtime_ms, SUM(sign) FROM changed WHERE runtime_ms IS NOT NULL
    GROUP BY runtime_ms HAVING SUM(sign) <> 0
    ON CONFLICT (runtime_ms) DO UPDATE SET count = evaluation_runtimes.count + excluded.count;
    RETURN NULL;
END
$$
"""


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


def _sqlite_upsert(row: str, sign: str) -> str:
    values = ", ".join(f"{sign}({value})" for value in _contributions(row).values())
    add = ", ".join(f"{name} = {name} + excluded.{name}" for name in COUNTERS)
    return (
        f"INSERT INTO evaluation_counters (status, language, shard, {_COLUMNS}) "
        f"SELECT {row}.status, {row}.language, 0, {values} WHERE {row}.{LIVE} "
        f"ON CONFLICT (status, language, shard) DO UPDATE SET {add}; "
        "INSERT INTO evaluation_runtimes (runtime_ms, count) "
        f"SELECT {row}.runtime_ms, {sign}1 WHERE {row}.{LIVE} AND {row}.runtime_ms IS NOT NULL "
        "ON CONFLICT (runtime_ms) DO UPDATE SET count = count + excluded.count;"
    )


_WATCHED = (
    "status",
    "language",
    "deleted_at",
    "runtime_ms",
    "output_location",
    "output_size",
    "error_location",
    "error_size",
    "log_size",
    "event_count",
)
_SQLITE_TRIGGERS = {
    "evaluations_counters_insert": "AFTER INSERT ON evaluations BEGIN "
    + _sqlite_upsert("NEW", "+")
    + " END",
    "evaluations_counters_update": "AFTER UPDATE ON evaluations WHEN "
    + " OR ".join(f"OLD.{name} IS NOT NEW.{name}" for name in _WATCHED)
    + " BEGIN "
    + _sqlite_upsert("OLD", "-")
    + " "
    + _sqlite_upsert("NEW", "+")
    + " END",
    "evaluations_counters_delete": "AFTER DELETE ON evaluations BEGIN "
    + _sqlite_upsert("OLD", "-")
    + " END",
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
            for name in COUNTERS
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
            postgresql_where=sa.text(LIVE),
            sqlite_where=sa.text(LIVE),
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
