"""The machine's ceilings the scenarios are compared with (the HTTP one is ``ceiling_app``).

- database: raw asyncpg, ``concurrency`` tasks on one pool of as many connections in one
  process, each running the service's own single-row ``INSERT`` (autocommit) or its
  primary-key ``SELECT`` back to back: no framework, no pool logic of ours, no JSON
  building beyond the driver's codec;
- file write: ``concurrency`` threads each writing 150 KB atomically the way a blob
  store must (write a temp file, fsync, rename over the target), back to back.
"""

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from benchmarks.measurement import Measurement, from_latencies
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from infrastructure.postgres.evaluations import INSERT, SELECT_LIVE
from infrastructure.sql.rows import evaluation_values
from infrastructure.sql.tables import evaluations

FILE_WRITE_BYTES = 150 * 1000
CODE = "import math\nprint(sum(math.sqrt(i) for i in range(1000)))\n"
# The column order of the service's INSERT (every column but the log store's).
INSERT_COLUMNS = tuple(
    column.name for column in evaluations.c if column.name not in {"log_size", "event_count"}
)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _init(connection: asyncpg.Connection) -> None:
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
    return [values[name] for name in INSERT_COLUMNS]


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
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency, init=_init)
    try:
        template = _insert_arguments("template")

        async def insert(worker_id: int, count: int) -> None:
            arguments = list(template)
            arguments[0] = f"ceiling-{run}-{worker_id}-{count}"
            await pool.execute(INSERT, *arguments)

        async def select(worker_id: int, count: int) -> None:
            row = await pool.fetchrow(
                SELECT_LIVE, select_ids[(worker_id * 7919 + count) % len(select_ids)]
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


def _atomic_write(directory: Path, name: str, data: bytes) -> None:
    temp = directory / f".{name}.tmp"
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temp, directory / name)


def file_write_ceiling(directory: Path, *, concurrency: int, duration_s: float) -> Measurement:
    """Atomic 150 KB writes per second: ``concurrency`` threads, temp + fsync + rename."""
    data = os.urandom(FILE_WRITE_BYTES)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    deadline = time.perf_counter() + duration_s

    def writer(index: int) -> None:
        target = directory / f"writer-{index}"
        target.mkdir(parents=True, exist_ok=True)
        count = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            _atomic_write(target, f"blob-{count % 4}", data)
            latencies[index].append(time.perf_counter() - started)
            count += 1

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return from_latencies(
        "atomic 150 KB file write", [value for part in latencies for value in part], elapsed
    )
