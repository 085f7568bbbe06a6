"""The asyncpg unit of work gives its connection back at commit, not at the scope's end."""

import pytest

from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.transaction import PgTransaction
from interfaces.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_a_committed_request_holds_no_connection(migrated_postgres_url: str) -> None:
    pool = await create_pool(Settings(database_url=migrated_postgres_url, db_pool_size=1))
    try:
        first = PgTransaction(pool, acquire_timeout_s=1)
        second = PgTransaction(pool, acquire_timeout_s=1)
        try:
            await first.write(lambda connection: connection.execute("SELECT 1"))
            await first.commit()
            # The first scope is still open (its answer is being sent): the one
            # connection of the pool must already be free for the next request.
            assert await second.write(lambda connection: connection.fetchval("SELECT 2")) == 2
            await second.commit()
            # And the first can still run statements after its commit: it acquires again.
            assert await first.read(lambda connection: connection.fetchval("SELECT 3")) == 3
        finally:
            await second.close()
            await first.close()
    finally:
        await pool.close()
