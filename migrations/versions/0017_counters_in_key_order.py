"""The statistics counters' rows locked in key order (PostgreSQL).

The statement-level triggers of migration 0013 upsert one counter row per ``(tenant,
status, language)`` a statement moved, in the shard of their backend, and one histogram
row per runtime bucket, in whatever order the aggregate yields them. Two writers whose
backends share a shard (``pg_backend_pid() % 16``: certain with more than 16
connections) and move records in opposite directions (``queued → running`` beside
``running → queued``, as Celery's ``STARTED`` and ``RETRY`` do) took the same two rows in
opposite orders, and PostgreSQL ended one of them as a deadlock: the request answered
500. Every upsert now takes its rows sorted by their key, so any two writers take the
rows they share in the same order. The counting is unchanged; SQLite (one writer at a
time, row triggers) is untouched. The body is 0013's with the two ``ORDER BY``s, written
out here: a revision keeps the SQL it ran (``migrations/counters.py``).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 13:00:00
"""

# Every statement below is built from constants of this module and of the migrations it
# names (no input reaches them).
# ruff: noqa: S608

import importlib

from alembic import op

from migrations import counters

revision: str = "0017"
down_revision: str | None = "0016"

_tenants = importlib.import_module("migrations.versions.0013_tenant_columns")
KEY = _tenants.KEY
LIVE = _tenants.LIVE
bucketed = _tenants.bucketed
OPERATIONS = ("insert", "update", "delete")


def pg_counters_body(operation: str) -> str:
    """0013's trigger body, each upsert's rows sorted by the key it conflicts on."""
    sources = {
        "insert": [("1", "new_rows")],
        "delete": [("-1", "old_rows")],
        "update": [("1", "new_rows"), ("-1", "old_rows")],
    }[operation]
    rows = " UNION ALL ".join(
        f"SELECT {sign} AS sign, r.* FROM {table} r WHERE r.{LIVE}" for sign, table in sources
    )
    signed = ", ".join(
        f"r.sign * ({value}) AS {name}" for name, value in counters.contributions("r").items()
    )
    sums = ", ".join(f"SUM({name})" for name in counters.COUNTERS)
    changed = " OR ".join(f"SUM({name}) <> 0" for name in counters.COUNTERS)
    bucket = bucketed("runtime_ms")
    return f"""BEGIN
    WITH moved AS ({rows}),
    changed AS (
        SELECT r.tenant_id, r.status, r.language, r.runtime_ms, r.sign, {signed} FROM moved r
    ),
    counted AS (
        INSERT INTO evaluation_counters ({KEY}, shard, {counters.COLUMNS})
        SELECT {KEY}, pg_backend_pid() % {counters.SHARDS}, {sums}
        FROM changed GROUP BY {KEY} HAVING {changed}
        ORDER BY {KEY}
        ON CONFLICT ({KEY}, shard) DO UPDATE SET {counters.ADD}
    )
    INSERT INTO evaluation_runtimes (tenant_id, runtime_ms, count)
    SELECT tenant_id, {bucket}, SUM(sign) FROM changed
    WHERE runtime_ms IS NOT NULL
    GROUP BY tenant_id, {bucket} HAVING SUM(sign) <> 0
    ORDER BY tenant_id, {bucket}
    ON CONFLICT (tenant_id, runtime_ms)
    DO UPDATE SET count = evaluation_runtimes.count + excluded.count;
    RETURN NULL;
END
$$
"""


def _pg_function(operation: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION evaluation_counters_{operation}() RETURNS trigger
LANGUAGE plpgsql AS $$
{pg_counters_body(operation)}"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for operation in OPERATIONS:
        op.execute(_pg_function(operation))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for operation in OPERATIONS:
        op.execute(_tenants._pg_function(operation))
