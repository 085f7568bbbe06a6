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

import sqlalchemy as sa
from alembic import op

from migrations import counters

revision: str = "0006"
down_revision: str | None = "0005"

EXACT_BELOW_MS = 1024
SUB_BITS = 7  # 128 buckets per power of two
TOP_BIT = 30  # runtime_ms is a 32-bit integer


def bucketed(value: str) -> str:
    """The lower bound of ``value``'s bucket, in integer arithmetic both databases share."""
    branches = [f"WHEN {value} < {EXACT_BELOW_MS} THEN {value}"]
    for bit in range(EXACT_BELOW_MS.bit_length() - 1, TOP_BIT):
        width = 1 << (bit - SUB_BITS)
        branches.append(f"WHEN {value} < {1 << (bit + 1)} THEN {value} / {width} * {width}")
    width = 1 << (TOP_BIT - SUB_BITS)
    return "(CASE " + " ".join(branches) + f" ELSE {value} / {width} * {width} END)"


def _pg_function(operation: str, bucket: counters.Bucket) -> str:
    return f"""
CREATE OR REPLACE FUNCTION evaluation_counters_{operation}() RETURNS trigger
LANGUAGE plpgsql AS $$
{counters.pg_counters_body(operation, bucket)}"""


def _pg_rebuild_function(bucket: counters.Bucket) -> str:
    return (
        "CREATE OR REPLACE FUNCTION evaluation_counters_rebuild() RETURNS void "
        "LANGUAGE sql AS $$ "
        "UPDATE evaluations e SET event_count = n.count FROM (SELECT evaluation_id, "
        "COUNT(*) AS count FROM evaluation_events GROUP BY evaluation_id) n "
        "WHERE e.id = n.evaluation_id AND e.event_count <> n.count; "
        + "; ".join(counters.rebuild(bucket))
        + " $$"
    )


def _use(bucket: counters.Bucket) -> None:
    """Triggers (and PostgreSQL's rebuild function) that count runtimes by ``bucket``."""
    if op.get_bind().dialect.name == "postgresql":
        for operation in ("insert", "update", "delete"):
            op.execute(_pg_function(operation, bucket))
        op.execute(_pg_rebuild_function(bucket))
        return
    for name, body in counters.sqlite_counter_triggers(bucket).items():
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
    _use(counters.exact)
    # The buckets lost the exact runtimes: count them again from the records.
    op.execute("DELETE FROM evaluation_runtimes")
    op.execute(
        "INSERT INTO evaluation_runtimes (runtime_ms, count) SELECT runtime_ms, COUNT(*) "
        f"FROM evaluations WHERE {counters.LIVE} AND runtime_ms IS NOT NULL GROUP BY runtime_ms"
    )
