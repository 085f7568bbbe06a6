"""A bucketed runtime histogram, and an index of soft-deleted records.

``evaluation_runtimes`` (migration 0003) kept one row per distinct runtime, and the
percentiles of ``GET /statistics`` are one window pass over its rows: 44 ms for the
48,814 distinct runtimes of the million-record benchmark, growing with the spread of
runtimes. Now a runtime below 1,024 ms keeps its own row (exact percentiles there);
above, each power-of-two range is cut into 128 equal buckets (each less than 0.8 %
as wide as its runtimes), keyed by their lower bound. The histogram has at most
3,712 rows whatever the data. The counters' triggers are re-created with the bucket
and the existing rows re-bucketed; ``application/runtime_buckets.py`` is the same
rule in Python. A downgrade restores the exact histogram from the records.

``idx_evaluations_deleted`` holds only soft-deleted records: the storage overview
counts them (and their events) over it instead of over the whole table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 00:00:00
"""

# Every statement below is built from constants of this module (no input reaches them).
# ruff: noqa: S608

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXACT_BELOW_MS = 1024
SUB_BITS = 7  # 128 buckets per power of two
TOP_BIT = 30  # runtime_ms is a 32-bit integer

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
Bucket = Callable[[str], str]


def bucketed(value: str) -> str:
    """The lower bound of ``value``'s bucket, in integer arithmetic both databases share."""
    branches = [f"WHEN {value} < {EXACT_BELOW_MS} THEN {value}"]
    for bit in range(EXACT_BELOW_MS.bit_length() - 1, TOP_BIT):
        width = 1 << (bit - SUB_BITS)
        branches.append(f"WHEN {value} < {1 << (bit + 1)} THEN {value} / {width} * {width}")
    width = 1 << (TOP_BIT - SUB_BITS)
    return "(CASE " + " ".join(branches) + f" ELSE {value} / {width} * {width} END)"


def exact(value: str) -> str:
    return value


def _contributions(row: str) -> dict[str, str]:
    """What one live ``evaluations`` row adds to each counter (as in migration 0003)."""

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


def _rebuild(bucket: Bucket) -> list[str]:
    return [
        "DELETE FROM evaluation_counters",
        "DELETE FROM evaluation_runtimes",
        f"INSERT INTO evaluation_counters (status, language, shard, {_COLUMNS}) "
        "SELECT status, language, 0, "
        + ", ".join(f"SUM({value})" for value in _contributions("evaluations").values())
        + f" FROM evaluations WHERE {LIVE} GROUP BY status, language",
        f"INSERT INTO evaluation_runtimes (runtime_ms, count) SELECT {bucket('runtime_ms')}, "
        f"COUNT(*) FROM evaluations WHERE {LIVE} AND runtime_ms IS NOT NULL "
        f"GROUP BY {bucket('runtime_ms')}",
    ]


def _pg_function(operation: str, bucket: Bucket) -> str:
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
CREATE OR REPLACE FUNCTION evaluation_counters_{operation}() RETURNS trigger
LANGUAGE plpgsql AS $$
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
    SELECT {bucket("runtime_ms")}, SUM(sign) FROM changed WHERE runtime_ms IS NOT NULL
    GROUP BY {bucket("runtime_ms")} HAVING SUM(sign) <> 0
    ON CONFLICT (runtime_ms) DO UPDATE SET count = evaluation_runtimes.count + excluded.count;
    RETURN NULL;
END
$$
"""


def _pg_rebuild_function(bucket: Bucket) -> str:
    return (
        "CREATE OR REPLACE FUNCTION evaluation_counters_rebuild() RETURNS void "
        "LANGUAGE sql AS $$ "
        "UPDATE evaluations e SET event_count = n.count FROM (SELECT evaluation_id, "
        "COUNT(*) AS count FROM evaluation_events GROUP BY evaluation_id) n "
        "WHERE e.id = n.evaluation_id AND e.event_count <> n.count; "
        + "; ".join(_rebuild(bucket))
        + " $$"
    )


def _sqlite_upsert(row: str, sign: str, bucket: Bucket) -> str:
    values = ", ".join(f"{sign}({value})" for value in _contributions(row).values())
    add = ", ".join(f"{name} = {name} + excluded.{name}" for name in COUNTERS)
    return (
        f"INSERT INTO evaluation_counters (status, language, shard, {_COLUMNS}) "
        f"SELECT {row}.status, {row}.language, 0, {values} WHERE {row}.{LIVE} "
        f"ON CONFLICT (status, language, shard) DO UPDATE SET {add}; "
        "INSERT INTO evaluation_runtimes (runtime_ms, count) "
        f"SELECT {bucket(f'{row}.runtime_ms')}, {sign}1 "
        f"WHERE {row}.{LIVE} AND {row}.runtime_ms IS NOT NULL "
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


def _sqlite_triggers(bucket: Bucket) -> dict[str, str]:
    return {
        "evaluations_counters_insert": "AFTER INSERT ON evaluations BEGIN "
        + _sqlite_upsert("NEW", "+", bucket)
        + " END",
        "evaluations_counters_update": "AFTER UPDATE ON evaluations WHEN "
        + " OR ".join(f"OLD.{name} IS NOT NEW.{name}" for name in _WATCHED)
        + " BEGIN "
        + _sqlite_upsert("OLD", "-", bucket)
        + " "
        + _sqlite_upsert("NEW", "+", bucket)
        + " END",
        "evaluations_counters_delete": "AFTER DELETE ON evaluations BEGIN "
        + _sqlite_upsert("OLD", "-", bucket)
        + " END",
    }


def _use(bucket: Bucket) -> None:
    """Triggers (and PostgreSQL's rebuild function) that count runtimes by ``bucket``."""
    if op.get_bind().dialect.name == "postgresql":
        for operation in ("insert", "update", "delete"):
            op.execute(_pg_function(operation, bucket))
        op.execute(_pg_rebuild_function(bucket))
        return
    for name, body in _sqlite_triggers(bucket).items():
        op.execute(f"DROP TRIGGER {name}")
        op.execute(f"CREATE TRIGGER {name} {body}")


def upgrade() -> None:
    _use(bucketed)
    # Re-bucket what the exact histogram holds (one row per distinct runtime, not a scan
    # of the records): merge each row into its bucket's.
    op.execute(
        "CREATE TEMPORARY TABLE runtime_buckets AS "
        f"SELECT {bucketed('runtime_ms')} AS bucket, SUM(count) AS count "
        f"FROM evaluation_runtimes WHERE count <> 0 GROUP BY {bucketed('runtime_ms')}"
    )
    op.execute("DELETE FROM evaluation_runtimes")
    op.execute(
        "INSERT INTO evaluation_runtimes (runtime_ms, count) "
        "SELECT bucket, count FROM runtime_buckets WHERE count <> 0"
    )
    op.execute("DROP TABLE runtime_buckets")
    op.create_index(
        "idx_evaluations_deleted",
        "evaluations",
        ["deleted_at"],
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("idx_evaluations_deleted", table_name="evaluations")
    _use(exact)
    # The buckets lost the exact runtimes: count them again from the records.
    op.execute("DELETE FROM evaluation_runtimes")
    op.execute(
        "INSERT INTO evaluation_runtimes (runtime_ms, count) SELECT runtime_ms, COUNT(*) "
        f"FROM evaluations WHERE {LIVE} AND runtime_ms IS NOT NULL GROUP BY runtime_ms"
    )
