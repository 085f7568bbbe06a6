"""The bulk load behind ``make bench-scale``: COPY with the indexes out of the way.

``load`` appends one segment of ``ScaleData`` (the whole table the first time, the rows
up to the next size after). As pg_restore does, the tables' indexes and constraints are
dropped for the COPY and re-created from their own definitions afterwards (checked to be
identical); the statistics triggers are off during the COPY and their counters rebuilt
once after it. ``load`` leaves the planner statistics as the COPY left them (stale, or
none for a new table; the server has autovacuum off): ``vacuum_analyze`` is the separate
last step, so a run can measure the service in between.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from benchmarks.scale_rows import EVALUATION_COLUMNS, EVENT_COLUMNS, ScaleData
from domain.tenancy import DEFAULT_TENANT
from infrastructure.sql.tenancy import SETTING

# Every table with a constraint on evaluations: their keys are dropped for the load.
TABLES = ("log_chunks", "evaluation_events", "evaluations")
BATCH = 20_000


async def _definitions(connection: asyncpg.Connection, table: str) -> tuple[list[str], list[str]]:
    """(ADD CONSTRAINT clauses, CREATE INDEX statements) of ``table``, in creation order."""
    constraints = await connection.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS definition, contype FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'f') "
        "ORDER BY contype = 'f', conname",
        table,
    )
    indexes = await connection.fetch(
        "SELECT indexdef FROM pg_indexes WHERE tablename = $1 AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass) ORDER BY indexname",
        table,
    )
    return (
        [f'ADD CONSTRAINT "{row["conname"]}" {row["definition"]}' for row in constraints],
        [row["indexdef"] for row in indexes],
    )


async def _strip(connection: asyncpg.Connection) -> dict[str, tuple[list[str], list[str]]]:
    saved = {table: await _definitions(connection, table) for table in TABLES}
    for kinds in (["f"], ["p", "u"]):  # foreign keys first: they depend on the keys
        for table in TABLES:
            for name in await connection.fetch(
                "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass "
                "AND contype::text = ANY($2::text[])",
                table,
                kinds,
            ):
                await connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name["conname"]}"')
    for table in TABLES:
        for statement in saved[table][1]:
            index = statement.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
            await connection.execute(f"DROP INDEX {index}")
    return saved


async def _restore(
    connection: asyncpg.Connection, saved: dict[str, tuple[list[str], list[str]]]
) -> None:
    await connection.execute("SET maintenance_work_mem = '512MB'")
    for table in reversed(TABLES):
        constraints, _ = saved[table]
        for clause in constraints:
            if " FOREIGN KEY " not in clause:
                await connection.execute(f"ALTER TABLE {table} {clause}")
    for table in reversed(TABLES):
        constraints, indexes = saved[table]
        for clause in constraints:
            if " FOREIGN KEY " in clause:
                await connection.execute(f"ALTER TABLE {table} {clause}")
        for statement in indexes:
            await connection.execute(statement)
    restored = {table: await _definitions(connection, table) for table in TABLES}
    if restored != saved:
        raise RuntimeError(f"schema not restored as it was: {restored} != {saved}")


async def _copy(
    connection: asyncpg.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Callable[[int, int], Iterator[tuple[Any, ...]]],
    units: tuple[int, int],
    progress: Progress,
    label: str,
    per_unit: Callable[[int, int], int],
) -> None:
    first, end = units
    task = progress.add_task(label, total=per_unit(first, end))
    for start in range(first, end, BATCH):
        stop = min(start + BATCH, end)
        await connection.copy_records_to_table(table, records=rows(start, stop), columns=columns)
        progress.advance(task, per_unit(start, stop))


def _progress() -> Progress:
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True))


async def load(dsn: str, data: ScaleData) -> float:
    """Append ``data``'s segment; the seconds it took. No ANALYZE (see ``vacuum_analyze``)."""
    started = time.perf_counter()
    segment = (data.start, data.evaluations)
    connection = await asyncpg.connect(dsn)
    try:
        # The rows are the default tenant's: its id is the tenant columns' default, which
        # reads the setting the service sets per transaction (ADR 0032, migration 0016).
        await connection.execute(f"SELECT set_config('{SETTING}', $1, false)", DEFAULT_TENANT)
        saved = await _strip(connection)
        # The statistics triggers (migration 0003) would redo per batch what one rebuild does.
        for table in TABLES:
            await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        with _progress() as progress:
            await _copy(
                connection,
                "evaluations",
                EVALUATION_COLUMNS,
                data.evaluation_rows,
                segment,
                progress,
                f"evaluations {data.start:,}..{data.evaluations:,}",
                lambda start, stop: stop - start,
            )
            await _copy(
                connection,
                "evaluation_events",
                EVENT_COLUMNS,
                data.event_rows,
                segment,
                progress,
                f"{data.events:,} events",
                lambda start, stop: sum(data.events_of(index) for index in range(start, stop)),
            )
            task = progress.add_task("indexes, constraints, counters", total=1)
            await _restore(connection, saved)
            await connection.execute("SELECT evaluation_counters_rebuild()")
            for table in TABLES:
                await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            progress.advance(task)
    finally:
        await connection.close()
    return time.perf_counter() - started


async def vacuum_analyze(dsn: str) -> float:
    """``VACUUM (ANALYZE)`` of the loaded tables; the seconds it took."""
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        with _progress() as progress:
            task = progress.add_task("VACUUM ANALYZE", total=len(TABLES))
            for table in TABLES:
                await connection.execute(f"VACUUM (ANALYZE) {table}")
                progress.advance(task)
    finally:
        await connection.close()
    return time.perf_counter() - started
