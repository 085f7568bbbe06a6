"""The statistics counters' SQL, as migrations 0003 and 0006 write it.

0003 creates the counters and their triggers with an exact runtime histogram; 0006
re-creates the triggers with a bucketed one and, on downgrade, with the exact one
again. Both build their statements from here with a ``bucket`` (``exact`` keeps
0003's). Frozen with them: a later change to the counters is a new migration that
writes its own SQL, never an edit here, so that every revision keeps the SQL it ran
(``alembic upgrade --sql`` renders the same text before and after this module).
"""

# Every statement below is built from constants of this module (no input reaches them).
# ruff: noqa: S608

from collections.abc import Callable

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
COLUMNS = ", ".join(COUNTERS)
ADD = ", ".join(f"{name} = evaluation_counters.{name} + excluded.{name}" for name in COUNTERS)
# The columns of ``evaluations`` whose change moves a counter (SQLite's update trigger).
WATCHED = (
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
Bucket = Callable[[str], str]


def exact(value: str) -> str:
    """The histogram key of migration 0003: the runtime itself."""
    return value


def contributions(row: str) -> dict[str, str]:
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


def rebuild(bucket: Bucket) -> list[str]:
    """Statements that count every live record again, from scratch."""
    return [
        "DELETE FROM evaluation_counters",
        "DELETE FROM evaluation_runtimes",
        f"INSERT INTO evaluation_counters (status, language, shard, {COLUMNS}) "
        "SELECT status, language, 0, "
        + ", ".join(f"SUM({value})" for value in contributions("evaluations").values())
        + f" FROM evaluations WHERE {LIVE} GROUP BY status, language",
        f"INSERT INTO evaluation_runtimes (runtime_ms, count) SELECT {bucket('runtime_ms')}, "
        f"COUNT(*) FROM evaluations WHERE {LIVE} AND runtime_ms IS NOT NULL "
        f"GROUP BY {bucket('runtime_ms')}",
    ]


def pg_counters_body(operation: str, bucket: Bucket) -> str:
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
        f"r.sign * ({value}) AS {name}" for name, value in contributions("r").items()
    )
    sums = ", ".join(f"SUM({name})" for name in COUNTERS)
    changed = " OR ".join(f"SUM({name}) <> 0" for name in COUNTERS)
    return f"""BEGIN
    WITH moved AS ({rows}),
    changed AS (SELECT r.status, r.language, r.runtime_ms, r.sign, {signed} FROM moved r),
    counted AS (
        INSERT INTO evaluation_counters (status, language, shard, {COLUMNS})
        SELECT status, language, pg_backend_pid() % {SHARDS}, {sums}
        FROM changed GROUP BY status, language HAVING {changed}
        ON CONFLICT (status, language, shard) DO UPDATE SET {ADD}
    )
    INSERT INTO evaluation_runtimes (runtime_ms, count)
    SELECT {bucket("runtime_ms")}, SUM(sign) FROM changed WHERE runtime_ms IS NOT NULL
    GROUP BY {bucket("runtime_ms")} HAVING SUM(sign) <> 0
    ON CONFLICT (runtime_ms) DO UPDATE SET count = evaluation_runtimes.count + excluded.count;
    RETURN NULL;
END
$$
"""


def _sqlite_upsert(row: str, sign: str, bucket: Bucket) -> str:
    values = ", ".join(f"{sign}({value})" for value in contributions(row).values())
    add = ", ".join(f"{name} = {name} + excluded.{name}" for name in COUNTERS)
    return (
        f"INSERT INTO evaluation_counters (status, language, shard, {COLUMNS}) "
        f"SELECT {row}.status, {row}.language, 0, {values} WHERE {row}.{LIVE} "
        f"ON CONFLICT (status, language, shard) DO UPDATE SET {add}; "
        "INSERT INTO evaluation_runtimes (runtime_ms, count) "
        f"SELECT {bucket(f'{row}.runtime_ms')}, {sign}1 "
        f"WHERE {row}.{LIVE} AND {row}.runtime_ms IS NOT NULL "
        "ON CONFLICT (runtime_ms) DO UPDATE SET count = count + excluded.count;"
    )


def sqlite_counter_triggers(bucket: Bucket) -> dict[str, str]:
    """SQLite's row triggers of the counters: name → what follows ``CREATE TRIGGER name``."""
    return {
        "evaluations_counters_insert": "AFTER INSERT ON evaluations BEGIN "
        + _sqlite_upsert("NEW", "+", bucket)
        + " END",
        "evaluations_counters_update": "AFTER UPDATE ON evaluations WHEN "
        + " OR ".join(f"OLD.{name} IS NOT NEW.{name}" for name in WATCHED)
        + " BEGIN "
        + _sqlite_upsert("OLD", "-", bucket)
        + " "
        + _sqlite_upsert("NEW", "+", bucket)
        + " END",
        "evaluations_counters_delete": "AFTER DELETE ON evaluations BEGIN "
        + _sqlite_upsert("OLD", "-", bucket)
        + " END",
    }
