"""Fail closed (ADR 0032): under row-level security (migration 0016), a statement that
forgets its tenant sees the caller's rows or none, never another tenant's, and a pooled
connection keeps no tenant once its unit of work is over.

The service's own container acts for one tenant, connected as the service's role and,
since ``FORCE`` binds the tables' owner too, as the owner (no superuser: a superuser
bypasses every policy). The owner writes the rows of both tenants beforehand, each with
its tenant set.
"""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from dishka import AsyncContainer, make_async_container

from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.postgres.pool import driver_dsn
from infrastructure.postgres.tenancy import begin, scoped
from infrastructure.postgres.transaction import PgTransaction
from interfaces.acting import system_scope
from interfaces.providers import build_providers
from interfaces.settings import Settings, load_settings
from tests.services import RoleUrls, owned_postgres_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

ACME = TenantId("acme")
AT = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = {DEFAULT_TENANT: ["d1", "d2", "d3"], ACME: ["a1", "a2"]}
# The planted bug: statements on tenant tables that filter on no tenant.
EVERY_ID = "SELECT id FROM evaluations ORDER BY id"
EVERY_COUNTER_TENANT = "SELECT DISTINCT tenant_id FROM evaluation_counters"


@pytest.fixture
def database() -> Iterator[RoleUrls]:
    with owned_postgres_database() as urls:
        yield urls


async def _write_both_tenants(owner: str) -> None:
    connection = await asyncpg.connect(driver_dsn(owner))
    try:
        for tenant, ids in ROWS.items():
            await connection.execute(begin(tenant))
            await connection.executemany(
                "INSERT INTO evaluations (tenant_id, id, code, status, language, created_at, "
                "updated_at) VALUES ($1, $2, 'print(1)', 'queued', 'python', $3, $3)",
                [(tenant, id_, AT) for id_ in ids],
            )
            await connection.execute("COMMIT")
    finally:
        await connection.close()


@pytest.fixture(params=["service", "owner"])
async def container(
    request: pytest.FixtureRequest, database: RoleUrls, tmp_path: Path
) -> AsyncIterator[AsyncContainer]:
    """The service's container on one pooled connection as the role ``request.param``
    names, both tenants' rows in place."""
    await _write_both_tenants(database.owner)
    settings = load_settings(
        {},
        database={"url": getattr(database, request.param), "pool_size": 1},
        storage={"file_storage_path": tmp_path / "files"},
    )
    made = make_async_container(*build_providers(settings), context={Settings: settings})
    try:
        yield made
    finally:
        await made.close()


def _ids(rows: list[asyncpg.Record]) -> list[str]:
    return [row[0] for row in rows]


async def test_a_statement_without_a_tenant_sees_the_callers_rows_or_none(
    container: AsyncContainer,
) -> None:
    async with system_scope(container, ACME) as scope:
        transaction = await scope.get(PgTransaction)
        # On its own, unscoped: no tenant is set, nothing is seen.
        assert await transaction.read(lambda c: c.fetch(EVERY_ID)) == []
        # Scoped but forgetting ``scope.tenant``: the setting alone confines it.
        forgot = scoped("SELECT id FROM evaluations")
        rows = await transaction.read(lambda c: c.fetch(forgot, transaction.tenant))
        assert sorted(_ids(rows)) == ROWS[ACME]
        # Inside the transaction, whose BEGIN set the tenant: the tenant's rows only.
        inside = await transaction.write(lambda c: c.fetch(EVERY_ID))
        assert _ids(inside) == ROWS[ACME]
        counted = await transaction.read(lambda c: c.fetch(EVERY_COUNTER_TENANT))
        assert _ids(counted) == [ACME]
        await transaction.rollback()


async def test_a_row_of_another_tenant_is_refused(container: AsyncContainer) -> None:
    async with system_scope(container, ACME) as scope:
        transaction = await scope.get(PgTransaction)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await transaction.write(
                lambda c: c.execute(
                    "INSERT INTO evaluations (tenant_id, id, code, created_at, updated_at) "
                    "VALUES ('default', 'planted', 'x', now(), now())"
                )
            )


async def test_a_connection_back_in_the_pool_keeps_no_tenant(container: AsyncContainer) -> None:
    async with system_scope(container, ACME) as scope:
        transaction = await scope.get(PgTransaction)
        used = await transaction.write(lambda c: c.fetchval("SELECT pg_backend_pid()"))
        assert await transaction.read(lambda c: c.fetchval("SHOW crucible.tenant")) == ACME
        await transaction.commit()  # the pool's one connection goes back
        pool = await scope.get(asyncpg.Pool)
        async with pool.acquire() as connection:
            assert await connection.fetchval("SELECT pg_backend_pid()") == used
            setting = "SELECT current_setting('crucible.tenant', true)"
            assert await connection.fetchval(setting) == ""
            assert await connection.fetch(EVERY_ID) == []
            assert await connection.fetch(EVERY_COUNTER_TENANT) == []


async def test_an_insert_naming_no_tenant_is_refused_unscoped(container: AsyncContainer) -> None:
    """The column's default is the setting itself, read without ``missing_ok``."""
    async with system_scope(container, ACME) as scope:
        pool = await scope.get(asyncpg.Pool)
        async with pool.acquire() as connection:
            with pytest.raises(asyncpg.PostgresError, match="tenant"):
                await connection.execute(
                    "INSERT INTO evaluations (id, code, created_at, updated_at) "
                    "VALUES ('unscoped', 'x', now(), now())"
                )
