"""The change feed on PostgreSQL stays gap-free while transactions commit out of order.

Transaction ids are handed out at the first write and transactions commit in any order,
so a reader that moved past an entry could miss one committed later with a smaller id.
The feed shows only entries of transactions older than every running one: these tests
commit in the worst order on purpose and check that no reader ever skips an entry.
"""

import random
from collections.abc import AsyncIterator

import anyio
import asyncpg
import pytest

from application.ports.change_feed import ChangeQuery
from domain.changes import Change, ChangeCursor
from domain.tenancy import DEFAULT_TENANT
from infrastructure.postgres.changes import PgChangeFeed
from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.transaction import PgTransaction
from interfaces.settings import DatabaseSettings
from tests.contract.conftest import BASE_TIME

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


INSERT = "INSERT INTO audit_log (tenant_id, at, actor, action, evaluation_id) VALUES ('default', $1, 'ci', 'update', $2)"


@pytest.fixture
async def pool(migrated_postgres_url: str) -> AsyncIterator["asyncpg.Pool[asyncpg.Record]"]:
    pool = await create_pool(DatabaseSettings(url=migrated_postgres_url, pool_size=12))
    try:
        await pool.execute("TRUNCATE audit_log RESTART IDENTITY")
        yield pool
    finally:
        await pool.close()


async def _read(
    pool: "asyncpg.Pool[asyncpg.Record]", after: ChangeCursor | None, limit: int = 100
) -> tuple[list[Change], ChangeCursor | None]:
    transaction = PgTransaction(pool, acquire_timeout_s=5, tenant=DEFAULT_TENANT)
    try:
        page = await PgChangeFeed(transaction).read(ChangeQuery(after=after, limit=limit))
    finally:
        await transaction.close()
    return page.changes, page.reached


async def test_an_entry_committed_late_is_not_skipped(
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    async with pool.acquire() as early, pool.acquire() as late:
        open_transaction = early.transaction()
        await open_transaction.start()
        await early.execute(INSERT, BASE_TIME, "eval-early")  # the smaller transaction id
        await late.execute(INSERT, BASE_TIME, "eval-late")  # commits first

        while_open, reached = await _read(pool, None)
        await open_transaction.commit()
        with anyio.fail_after(30):  # other tests' transactions may also be running
            after_commit, _ = await _read(pool, reached)
            while len(after_commit) < 2:
                await anyio.sleep(0.05)
                after_commit, _ = await _read(pool, reached)

    assert while_open == []
    assert [c.evaluation_id for c in after_commit] == ["eval-early", "eval-late"]


async def test_a_reader_beside_writers_that_commit_out_of_order_sees_each_entry_once(
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    writers, per_writer = 8, 25
    written: set[str] = set()
    seen: list[Change] = []
    done = anyio.Event()

    async def write(writer: int) -> None:
        rng = random.Random(writer)
        for n in range(per_writer):
            async with pool.acquire() as connection, connection.transaction():
                await connection.execute(INSERT, BASE_TIME, f"w{writer}-{n}")
                await anyio.sleep(rng.random() * 0.02)  # hold the transaction open a while
            written.add(f"w{writer}-{n}")

    async def read() -> None:
        after: ChangeCursor | None = None
        while True:
            finished = done.is_set()
            changes, reached = await _read(pool, after, limit=7)
            seen.extend(changes)
            after = reached or after
            if finished and reached is None and len(seen) >= len(written):
                return
            if reached is None:
                await anyio.sleep(0.005)

    with anyio.fail_after(120):
        async with anyio.create_task_group() as readers:
            readers.start_soon(read)
            async with anyio.create_task_group() as group:
                for writer in range(writers):
                    group.start_soon(write, writer)
            done.set()

    ids = [c.evaluation_id for c in seen]
    assert len(ids) == len(set(ids)) == writers * per_writer
    assert set(ids) == written
    assert [c.cursor for c in seen] == sorted(c.cursor for c in seen)
