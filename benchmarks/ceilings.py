"""The database ceilings the scenarios are compared with (the HTTP ones: ``ceiling_app``).

Raw asyncpg, ``concurrency`` tasks on one pool of as many connections in one process,
each running the service's own single-row ``INSERT`` (autocommit) or its primary-key
``SELECT`` back to back: no framework, no pool logic of ours, no JSON building beyond
the driver's codec (``init_connection``, which ``ceiling_app``'s pools use too).
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from benchmarks.measurement import Measurement, from_latencies
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT
from infrastructure.postgres.evaluations import INSERT, SELECT_LIVE
from infrastructure.sql.rows import evaluation_values
from infrastructure.sql.tables import evaluations

CODE = "import math\nprint(sum(math.sqrt(i) for i in range(1000)))\n"
# The column order of the service's INSERT after the tenant (every column but the log
# store's, the event log's and the tenant's).
INSERT_COLUMNS = tuple(
    column.name
    for column in evaluations.c
    if column.name not in {"log_size", "event_count", "tenant_id"}
)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=_json, decoder=msgspec.json.decode, schema="pg_catalog"
    )


def _insert_arguments(evaluation_id: str) -> list[Any]:
    now = datetime.now(UTC)
    record = Evaluation(
        id=EvaluationId(evaluation_id),
        code=CODE,
        created_at=now,
        updated_at=now,
        metadata={"user": "bench", "tags": ["a", "b"]},
    )
    values = evaluation_values(record)
    return [DEFAULT_TENANT, *(values[name] for name in INSERT_COLUMNS)]


async def _drive(
    concurrency: int, duration_s: float, operation: Callable[[int, int], Awaitable[None]]
) -> tuple[list[float], float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + duration_s

    async def worker(worker_id: int) -> None:
        count = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await operation(worker_id, count)
            latencies.append(time.perf_counter() - started)
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return latencies, time.perf_counter() - started


async def database_ceilings(
    dsn: str, *, concurrency: int, duration_s: float, select_ids: list[str]
) -> tuple[Measurement, Measurement]:
    """(INSERT, PK SELECT) rates of raw asyncpg at ``concurrency`` on the service's table."""
    run = uuid.uuid4().hex[:8]
    pool = await asyncpg.create_pool(
        dsn, min_size=concurrency, max_size=concurrency, init=init_connection
    )
    try:
        template = _insert_arguments("template")

        async def insert(worker_id: int, count: int) -> None:
            arguments = list(template)
            arguments[1] = f"ceiling-{run}-{worker_id}-{count}"
            await pool.execute(INSERT, *arguments)

        async def select(worker_id: int, count: int) -> None:
            row = await pool.fetchrow(
                SELECT_LIVE,
                DEFAULT_TENANT,
                select_ids[(worker_id * 7919 + count) % len(select_ids)],
            )
            assert row is not None

        await _drive(concurrency, 1.0, select)
        latencies, elapsed = await _drive(concurrency, duration_s, insert)
        inserted = from_latencies("asyncpg INSERT", latencies, elapsed)
        latencies, elapsed = await _drive(concurrency, duration_s, select)
        selected = from_latencies("asyncpg PK SELECT", latencies, elapsed)
    finally:
        await pool.close()
    return inserted, selected
