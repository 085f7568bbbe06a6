"""Two writers in one counter shard, moving records in opposite directions, never deadlock.

The statistics triggers (migration 0017) take their counter rows in key order. The test
builds the interleaving that deadlocked before: a third transaction holds one of the
two counter rows both writers need, both writers queue behind it, and it lets go. In
key order the first writer takes both rows and commits, then the second; in opposite
orders each held the row the other waited for, and PostgreSQL ended one of them.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from infrastructure.postgres.pool import driver_dsn
from infrastructure.sql.migrate import upgrade
from migrations.counters import SHARDS
from tests.pg_locks import until_waiting
from tests.services import temporary_postgres_database

pytestmark = pytest.mark.postgres

# Two records of one tenant and language: a queued one a worker starts, a running one
# a worker sends back to the queue (Celery's STARTED and RETRY).
RECORDS = (
    "INSERT INTO evaluations (tenant_id, id, code, status) VALUES "
    "('default', 'starts', 'x', 'queued'), ('default', 'retries', 'y', 'running')"
)
MOVES = {
    "starts": "UPDATE evaluations SET status = 'running' WHERE id = 'starts'",
    "retries": "UPDATE evaluations SET status = 'queued' WHERE id = 'retries'",
}
COUNTS = (
    "SELECT status, SUM(evaluations)::int FROM evaluation_counters "
    "GROUP BY status HAVING SUM(evaluations) <> 0 ORDER BY status"
)


@asynccontextmanager
async def _connections(dsn: str, count: int) -> AsyncIterator[list[asyncpg.Connection]]:
    opened = [await asyncpg.connect(dsn) for _ in range(count)]
    try:
        yield opened
    finally:
        for connection in opened:
            await connection.close()


async def _same_shard(extra: list[asyncpg.Connection]) -> tuple[int, int]:
    """Indexes of two connections of ``extra`` whose backends share a counter shard
    (``pg_backend_pid() % SHARDS``): among ``SHARDS + 1`` there are always two."""
    seen: dict[int, int] = {}
    for index, connection in enumerate(extra):
        shard = connection.get_server_pid() % SHARDS
        if shard in seen:
            return seen[shard], index
        seen[shard] = index
    raise AssertionError(f"{len(extra)} backends in {len(seen)} shards")


async def _move(connection: asyncpg.Connection, statement: str) -> None:
    async with connection.transaction():
        await connection.execute(statement)


async def _interleaved(dsn: str, held_status: str) -> list[BaseException | None]:
    """Both moves queued behind a transaction holding ``held_status``'s counter row of
    their shard; what each ended with once it let go (``None``: committed)."""
    async with _connections(dsn, SHARDS + 3) as connections:
        holder, observer, *candidates = connections
        first, second = await _same_shard(candidates)
        starts, retries = candidates[first], candidates[second]
        shard = starts.get_server_pid() % SHARDS
        await holder.execute(
            "INSERT INTO evaluation_counters (tenant_id, status, language, shard) "
            "SELECT 'default', status, 'python', $1 FROM unnest($2::text[]) AS status "
            "ON CONFLICT DO NOTHING",
            shard,
            ["queued", "running"],
        )
        held = holder.transaction()
        await held.start()
        await holder.execute(
            "SELECT 1 FROM evaluation_counters WHERE tenant_id = 'default' AND status = $1 "
            "AND language = 'python' AND shard = $2 FOR UPDATE",
            held_status,
            shard,
        )
        moving = [asyncio.ensure_future(_move(starts, MOVES["starts"]))]
        await until_waiting(observer, starts.get_server_pid())
        moving.append(asyncio.ensure_future(_move(retries, MOVES["retries"])))
        await until_waiting(observer, retries.get_server_pid())
        await held.commit()
        ended = await asyncio.wait_for(asyncio.gather(*moving, return_exceptions=True), 30)
        return [error if isinstance(error, BaseException) else None for error in ended]


@pytest.mark.parametrize("held_status", ["queued", "running"])
def test_opposite_moves_in_one_shard_both_commit(held_status: str) -> None:
    with temporary_postgres_database() as url:
        upgrade(url)
        dsn = driver_dsn(url)

        async def run() -> tuple[list[BaseException | None], list[tuple[str, int]]]:
            connection = await asyncpg.connect(dsn)
            try:
                await connection.execute(RECORDS)
                before = [tuple(row) for row in await connection.fetch(COUNTS)]
                assert before == [("queued", 1), ("running", 1)], before
                ended = await _interleaved(dsn, held_status)
                return ended, [tuple(row) for row in await connection.fetch(COUNTS)]
            finally:
                await connection.close()

        ended, after = asyncio.run(run())

        assert ended == [None, None], ended
        assert after == [("queued", 1), ("running", 1)], after  # one each way: even
