"""The list's plan on a table that grew without planner statistics, and the upkeep
that restores it (ADR 0018).

PostgreSQL here runs with autovacuum off, as a server whose autovacuum is behind: a
table filled after its last ANALYZE is planned from guesses, and the unfiltered first
page became a read and sort of every live row (until migration 0013 led its index with
the tenant, which every page names). ``PgPlannerStatistics.refresh``
analyzes what changed by more than autovacuum's 50 rows + 10 %, one instance at a time.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from application.queries import EvaluationQuery
from domain.tenancy import DEFAULT_TENANT
from infrastructure.memory.planner_statistics import NoPlannerStatistics
from infrastructure.postgres.evaluation_pages import page_query
from infrastructure.postgres.planner_statistics import LOCK_KEY, PgPlannerStatistics
from infrastructure.postgres.pool import create_pool, driver_dsn
from infrastructure.sql.rows import RECORD_COLUMNS
from interfaces.http.planner_statistics import planner_statistics
from interfaces.providers import build_providers
from interfaces.settings import DatabaseSettings, Settings, load_settings

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

ROWS = 45_000
GROW = f"""
INSERT INTO evaluations (tenant_id, id, code, language, status, created_at, updated_at,
    metadata)
SELECT 'default', 'eval_' || lpad(i::text, 8, '0'), repeat('x', 200),
       CASE WHEN i % 3 = 0 THEN 'rust' ELSE 'python' END,
       CASE WHEN i % 10 = 0 THEN 'completed' ELSE 'queued' END,
       now() - i * interval '1 second', now(), '{{}}'
  FROM generate_series(1, {ROWS}) AS i
"""
MODIFIED = "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'evaluations'"
ANALYZED = "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'evaluations'"


@pytest.fixture
async def grown(migrated_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The evaluations table grown by 45k rows since its statistics (none) were taken."""
    connection = await asyncpg.connect(driver_dsn(migrated_url))
    try:
        await connection.execute(GROW)
        # Statistics reach the shared counters when a backend goes idle, at most once a
        # second: force this one's, then wait until another backend can see them.
        await connection.execute("SELECT pg_stat_force_next_flush()")
        await _until_seen(migrated_url, lambda modified: modified >= ROWS)
        yield connection
    finally:
        await connection.close()


async def _until_seen(url: str, seen: Any) -> None:
    deadline = time.monotonic() + 10
    while True:
        other = await asyncpg.connect(driver_dsn(url))
        try:
            value = await other.fetchval(MODIFIED)
        finally:
            await other.close()
        if value is not None and seen(value):
            return
        assert time.monotonic() < deadline, f"n_mod_since_analyze stayed at {value}"
        await asyncio.sleep(0.1)


async def _first_page_plan(connection: asyncpg.Connection) -> str:
    statement, arguments = page_query(EvaluationQuery(limit=50), RECORD_COLUMNS, DEFAULT_TENANT)
    rows = await connection.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + statement, *arguments)
    return "\n".join(row[0] for row in rows)


async def test_refresh_analyzes_a_grown_table_and_the_page_walks_its_index(
    grown: asyncpg.Connection, migrated_url: str
) -> None:
    assert not await grown.fetchval(ANALYZED)
    pool = await create_pool(DatabaseSettings(url=migrated_url, pool_size=2))
    try:
        analyzed = await PgPlannerStatistics(pool).refresh()
        assert "evaluations" in analyzed
        assert await grown.fetchval(ANALYZED)
        # Nothing changed since: nothing to do.
        assert "evaluations" not in await PgPlannerStatistics(pool).refresh()
    finally:
        await pool.close()

    plan = await _first_page_plan(grown)
    assert "Index Scan using idx_evaluations_created_at" in plan, plan
    assert "rows=45000" not in plan, plan  # no node reads every live row


async def test_without_statistics_the_first_page_still_walks_its_index(
    grown: asyncpg.Connection,
) -> None:
    """The first page before any ANALYZE. Until migration 0013 it read and sorted every
    live row (why the upkeep exists); led by the tenant, whose equality the planner's
    guesses rate as selective, the index now serves it from guesses too."""
    assert not await grown.fetchval(ANALYZED)
    plan = await _first_page_plan(grown)
    assert "Index Scan using idx_evaluations_created_at" in plan, plan
    assert "rows=45000" not in plan, plan


async def test_one_instance_at_a_time(grown: asyncpg.Connection, migrated_url: str) -> None:
    pool = await create_pool(DatabaseSettings(url=migrated_url, pool_size=2))
    try:
        async with grown.transaction():
            assert await grown.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY)
            assert await PgPlannerStatistics(pool).refresh() == []
        assert "evaluations" in await PgPlannerStatistics(pool).refresh()
    finally:
        await pool.close()


def _settings(url: str, interval_s: int) -> Settings:
    return load_settings({}, database={"url": url, "analyze_interval_s": interval_s})


async def test_the_service_job_analyzes_at_start(
    grown: asyncpg.Connection, migrated_url: str
) -> None:
    from dishka import make_async_container

    settings = _settings(migrated_url, 3600)
    container = make_async_container(*build_providers(settings), context={Settings: settings})
    try:
        async with planner_statistics(container, settings):
            deadline = time.monotonic() + 10
            while not await grown.fetchval(ANALYZED):
                assert time.monotonic() < deadline, "the job did not analyze at start"
                await asyncio.sleep(0.05)
    finally:
        await container.close()


async def test_the_service_starts_the_job(grown: asyncpg.Connection, migrated_url: str) -> None:
    from litestar.testing import AsyncTestClient

    from interfaces.http.app import create_app

    async with AsyncTestClient(create_app(_settings(migrated_url, 3600))) as client:
        deadline = time.monotonic() + 10
        while not await grown.fetchval(ANALYZED):
            assert time.monotonic() < deadline, "the running service did not analyze"
            await asyncio.sleep(0.05)
        assert (await client.get("/evaluations?limit=1")).json()["total"] == ROWS


async def test_the_job_is_off_at_zero(grown: asyncpg.Connection, migrated_url: str) -> None:
    from dishka import make_async_container

    settings = _settings(migrated_url, 0)
    container = make_async_container(*build_providers(settings), context={Settings: settings})
    try:
        async with planner_statistics(container, settings):
            await asyncio.sleep(0.3)
        assert not await grown.fetchval(ANALYZED)
    finally:
        await container.close()


async def test_nothing_to_keep_without_postgresql() -> None:
    assert await NoPlannerStatistics().refresh() == []
