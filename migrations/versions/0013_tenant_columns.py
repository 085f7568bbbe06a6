"""A tenant on every row (ADR 0032, step 2).

Every table gets ``tenant_id``: the tenant's name (``domain.tenancy``: 1 to 63 of
``a-z 0-9 _ -``, starting with a letter or a digit), held to that by a ``CHECK`` on each
table (PostgreSQL: the regular expression; SQLite, which has none: ``GLOB`` tests and the
length in bytes, so that neither a NUL nor a character beyond ASCII passes). The default
is the constant ``'default'``: existing rows belong to the default tenant, and a writer
that names no tenant writes there. Keys stay as they were (``(tenant_id, id)`` is the
next migration's).

The b-tree indexes that serve a list, a filter or the change feed are built again led by
``tenant_id``, so that one tenant's page, count or feed is a range of its own: the list's
``(created_at, id)``, ``(status | language, created_at, id)``, the ``id`` prefix's and the
soft-deleted records' on ``evaluations``; the timeline's on ``evaluation_events``; the
feed's ``(txid, id)`` and the filters' ``(evaluation_id | actor | action, id)`` on
``audit_log``. The trigram and ``metadata`` GIN indexes stay as they are.

The statistics counters are kept per tenant: ``evaluation_counters`` keyed by
``(tenant_id, status, language, shard)``, ``evaluation_runtimes`` by ``(tenant_id,
runtime_ms)``, and the triggers that keep them (PostgreSQL's statement-level ones of
migrations 0003 and 0006, SQLite's row ones) group by the tenant too. Existing counter
rows are the default tenant's. PostgreSQL's ``evaluation_counters_rebuild()`` counts per
tenant. A downgrade sums the tenants' counters again by counting the records.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 22:30:00
"""

# Every statement below is built from constants of this module (no input reaches them).
# ruff: noqa: S608

import importlib

import sqlalchemy as sa
from alembic import op

from migrations import counters

revision: str = "0013"
down_revision: str | None = "0012"

_bucketed = importlib.import_module("migrations.versions.0006_bucketed_runtime_histogram")
bucketed = _bucketed.bucketed

TABLES = (
    "evaluations",
    "evaluation_events",
    "log_chunks",
    "audit_log",
    "evaluation_counters",
    "evaluation_runtimes",
    "idempotency_keys",
    "journal_applied",
)
DEFAULT = "default"
PG_CHECK = "tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'"
# The same rule without regular expressions: the first character, no character outside the
# set, 1 to 63 bytes, and as many characters as bytes (a NUL would end SQLite's text early).
SQLITE_CHECK = (
    "tenant_id GLOB '[a-z0-9]*' AND tenant_id NOT GLOB '*[^a-z0-9_-]*' "
    "AND length(CAST(tenant_id AS BLOB)) BETWEEN 1 AND 63 "
    "AND length(tenant_id) = length(CAST(tenant_id AS BLOB))"
)
LIVE = "deleted_at IS NULL"
DELETED = "deleted_at IS NOT NULL"


def _is_postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def check() -> str:
    """The ``CHECK`` of ``tenant_id`` in this database's dialect."""
    return PG_CHECK if _is_postgres() else SQLITE_CHECK


def _tenant_column(table: str) -> str:
    return (
        f"tenant_id VARCHAR(63) NOT NULL DEFAULT '{DEFAULT}' "
        f"CONSTRAINT ck_{table}_tenant CHECK ({check()})"
    )


# --- Indexes: (name, table, columns, where, PostgreSQL extras) before and after. ---------

_Index = tuple[str, str, list[str], str | None, dict[str, object]]


def _indexes(*, tenant: bool) -> list[_Index]:
    lead = ["tenant_id"] if tenant else []
    page = ["created_at DESC", "id DESC"]
    pattern: dict[str, object] = {
        "postgresql_ops": {"id": "text_pattern_ops"},
        "postgresql_include": ["created_at"],
    }
    return [
        *(
            (f"idx_evaluations_live_{column}", "evaluations", [*lead, column, *page], LIVE, {})
            for column in ("status", "language")
        ),
        ("idx_evaluations_created_at", "evaluations", [*lead, *page], LIVE, {}),
        ("idx_evaluations_deleted", "evaluations", [*lead, "deleted_at"], DELETED, {}),
        ("idx_evaluations_live_id_pattern", "evaluations", [*lead, "id"], LIVE, pattern),
        (
            "idx_events_evaluation_id",
            "evaluation_events",
            [*lead, "evaluation_id", "timestamp", "id"],
            None,
            {},
        ),
        ("idx_audit_log_feed", "audit_log", [*lead, "txid", "id"], None, {}),
        *(
            (f"idx_audit_log_{column}", "audit_log", [*lead, column, "id"], None, {})
            for column in ("evaluation_id", "actor", "action")
        ),
    ]


def _rebuild_indexes(*, tenant: bool) -> None:
    for name, table, columns, where, extras in _indexes(tenant=tenant):
        op.drop_index(name, table_name=table)
        condition = None if where is None else sa.text(where)
        op.create_index(
            name,
            table,
            [sa.text(column) if " " in column else column for column in columns],
            postgresql_where=condition,
            sqlite_where=condition,
            **extras,  # type: ignore[arg-type]
        )


# --- The counters, per tenant. ----------------------------------------------------------

KEY = "tenant_id, status, language"


def rebuild(bucket: counters.Bucket) -> list[str]:
    """Statements that count every live record again, per tenant, from scratch."""
    return [
        "DELETE FROM evaluation_counters",
        "DELETE FROM evaluation_runtimes",
        f"INSERT INTO evaluation_counters ({KEY}, shard, {counters.COLUMNS}) "
        f"SELECT {KEY}, 0, "
        + ", ".join(f"SUM({value})" for value in counters.contributions("evaluations").values())
        + f" FROM evaluations WHERE {LIVE} GROUP BY {KEY}",
        "INSERT INTO evaluation_runtimes (tenant_id, runtime_ms, count) "
        f"SELECT tenant_id, {bucket('runtime_ms')}, COUNT(*) FROM evaluations "
        f"WHERE {LIVE} AND runtime_ms IS NOT NULL GROUP BY tenant_id, {bucket('runtime_ms')}",
    ]


def pg_counters_body(operation: str, bucket: counters.Bucket) -> str:
    """The body (``BEGIN`` … ``$$``) of PostgreSQL's statement-level trigger function."""
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
    return f"""BEGIN
    WITH moved AS ({rows}),
    changed AS (
        SELECT r.tenant_id, r.status, r.language, r.runtime_ms, r.sign, {signed} FROM moved r
    ),
    counted AS (
        INSERT INTO evaluation_counters ({KEY}, shard, {counters.COLUMNS})
        SELECT {KEY}, pg_backend_pid() % {counters.SHARDS}, {sums}
        FROM changed GROUP BY {KEY} HAVING {changed}
        ON CONFLICT ({KEY}, shard) DO UPDATE SET {counters.ADD}
    )
    INSERT INTO evaluation_runtimes (tenant_id, runtime_ms, count)
    SELECT tenant_id, {bucket("runtime_ms")}, SUM(sign) FROM changed
    WHERE runtime_ms IS NOT NULL
    GROUP BY tenant_id, {bucket("runtime_ms")} HAVING SUM(sign) <> 0
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
{pg_counters_body(operation, bucketed)}"""


PG_REBUILD_FUNCTION = (
    "CREATE OR REPLACE FUNCTION evaluation_counters_rebuild() RETURNS void "
    "LANGUAGE sql AS $$ "
    "UPDATE evaluations e SET event_count = n.count FROM (SELECT evaluation_id, "
    "COUNT(*) AS count FROM evaluation_events GROUP BY evaluation_id) n "
    "WHERE e.id = n.evaluation_id AND e.event_count <> n.count; "
    + "; ".join(rebuild(bucketed))
    + " $$"
)


def _sqlite_upsert(row: str, sign: str) -> str:
    values = ", ".join(f"{sign}({value})" for value in counters.contributions(row).values())
    add = ", ".join(f"{name} = {name} + excluded.{name}" for name in counters.COUNTERS)
    return (
        f"INSERT INTO evaluation_counters ({KEY}, shard, {counters.COLUMNS}) "
        f"SELECT {row}.tenant_id, {row}.status, {row}.language, 0, {values} "
        f"WHERE {row}.{LIVE} "
        f"ON CONFLICT ({KEY}, shard) DO UPDATE SET {add}; "
        "INSERT INTO evaluation_runtimes (tenant_id, runtime_ms, count) "
        f"SELECT {row}.tenant_id, {bucketed(f'{row}.runtime_ms')}, {sign}1 "
        f"WHERE {row}.{LIVE} AND {row}.runtime_ms IS NOT NULL "
        "ON CONFLICT (tenant_id, runtime_ms) DO UPDATE SET count = count + excluded.count;"
    )


def sqlite_counter_triggers() -> dict[str, str]:
    """SQLite's row triggers of the counters: name → what follows ``CREATE TRIGGER name``."""
    watched = ("tenant_id", *counters.WATCHED)
    return {
        "evaluations_counters_insert": "AFTER INSERT ON evaluations BEGIN "
        + _sqlite_upsert("NEW", "+")
        + " END",
        "evaluations_counters_update": "AFTER UPDATE ON evaluations WHEN "
        + " OR ".join(f"OLD.{name} IS NOT NEW.{name}" for name in watched)
        + " BEGIN "
        + _sqlite_upsert("OLD", "-")
        + " "
        + _sqlite_upsert("NEW", "+")
        + " END",
        "evaluations_counters_delete": "AFTER DELETE ON evaluations BEGIN "
        + _sqlite_upsert("OLD", "-")
        + " END",
    }


def _counter_tables(*, tenant: bool) -> list[tuple[str, list[sa.Column[object]], list[str]]]:
    """The two counter tables' columns and keys, with or without the tenant."""

    def lead() -> list[sa.Column[object]]:
        if not tenant:
            return []
        check_tenant = sa.CheckConstraint(check(), name="tenant")
        return [
            sa.Column(
                "tenant_id", sa.String(63), check_tenant, nullable=False, server_default=DEFAULT
            )
        ]

    key = ["tenant_id"] if tenant else []
    counted = [
        sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
        for name in counters.COUNTERS
    ]
    return [
        (
            "evaluation_counters",
            [
                *lead(),
                sa.Column("status", sa.String(50), nullable=False),
                sa.Column("language", sa.String(50), nullable=False),
                sa.Column("shard", sa.SmallInteger(), nullable=False),
                *counted,
            ],
            [*key, "status", "language", "shard"],
        ),
        (
            "evaluation_runtimes",
            [
                *lead(),
                sa.Column("runtime_ms", sa.Integer(), nullable=False, autoincrement=False),
                sa.Column("count", sa.BigInteger(), nullable=False, server_default="0"),
            ],
            [*key, "runtime_ms"],
        ),
    ]


COUNTER_TABLES = ("evaluation_counters", "evaluation_runtimes")


def _sqlite_recreate_counters(*, tenant: bool, keep_rows: bool) -> None:
    """SQLite cannot change a primary key in place: each counter table is made anew, its
    rows copied when ``keep_rows`` (as the default tenant's). The triggers that write them
    are dropped first (a renamed table takes their references along) and made again after.
    """
    for name in counters.sqlite_counter_triggers(bucketed):
        op.execute(f"DROP TRIGGER {name}")
    for table, columns, key in _counter_tables(tenant=tenant):
        op.execute(f"ALTER TABLE {table} RENAME TO _{table}_old")
        op.create_table(table, *columns, sa.PrimaryKeyConstraint(*key, name=f"pk_{table}"))
        if keep_rows:
            names = ", ".join(column.name for column in columns if column.name != "tenant_id")
            op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _{table}_old")
        op.execute(f"DROP TABLE _{table}_old")
    triggers = sqlite_counter_triggers() if tenant else counters.sqlite_counter_triggers(bucketed)
    for name, body in triggers.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def _pg_counter_keys(*, tenant: bool) -> None:
    for table, _, key in _counter_tables(tenant=tenant):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS pk_{table}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(key)})")


# --- Upgrade and downgrade. -------------------------------------------------------------


def upgrade() -> None:
    postgres = _is_postgres()
    for table in TABLES:
        if postgres or table not in COUNTER_TABLES:
            op.execute(f"ALTER TABLE {table} ADD COLUMN {_tenant_column(table)}")
    _rebuild_indexes(tenant=True)
    if not postgres:
        _sqlite_recreate_counters(tenant=True, keep_rows=True)
        return
    _pg_counter_keys(tenant=True)
    for operation in ("insert", "update", "delete"):
        op.execute(_pg_function(operation))
    op.execute(PG_REBUILD_FUNCTION)


def downgrade() -> None:
    """Back to one set of counters for all: the tenants' rows would collide in the old
    keys, so the counters are counted again from the records (migration 0006's rule)."""
    postgres = _is_postgres()
    _rebuild_indexes(tenant=False)
    if postgres:
        for operation in ("insert", "update", "delete"):
            op.execute(_bucketed._pg_function(operation, bucketed))
        op.execute(_bucketed._pg_rebuild_function(bucketed))
        for table in COUNTER_TABLES:
            op.execute(f"DELETE FROM {table}")
            op.drop_column(table, "tenant_id")  # and the key that held it
        _pg_counter_keys(tenant=False)
    else:
        _sqlite_recreate_counters(tenant=False, keep_rows=False)
    # Plain DROP COLUMN (SQLite >= 3.35): a rebuilt table would lose its triggers.
    for table in TABLES:
        if table not in COUNTER_TABLES:
            op.drop_column(table, "tenant_id")
    for statement in counters.rebuild(bucketed):
        op.execute(statement)
