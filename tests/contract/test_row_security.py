"""Fail closed (ADR 0032): under row-level security, a statement that forgets its tenant
sees the caller's rows or none, never another tenant's, and a pooled connection keeps no
tenant once its unit of work is over.

The service's own container, connected as the service's role (``tests.row_security``),
acts for one tenant; the rows of both tenants are written by the owner beforehand.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from dishka import AsyncContainer, make_async_container

from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.postgres.pool import driver_dsn
from infrastructure.postgres.tenancy import scoped
from infrastructure.postgres.transaction import PgTransaction
from interfaces.acting import system_scope
from interfaces.providers import build_providers
from interfaces.settings import Settings, load_settings

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

ACME = TenantId("acme")
AT = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = {DEFAULT_TENANT: ["d1", "d2", "d3"], ACME: ["a1", "a2"]}
# The planted bug: statements on tenant tables that filter on no tenant.
EVERY_ID = "SELECT id FROM evaluations ORDER BY id"
EVERY_COUNTER_TENANT = "SELECT DISTINCT tenant_id FROM evaluation_counters"


@pytest.fixture
async def container(
    row_secured_postgres_urls: tuple[str, str], tmp_path: Path
) -> AsyncIterator[AsyncContainer]:
    """The service's container on one pooled connection, both tenants' rows in place."""
    owner, service = row_secured_postgres_urls
    connection = await asyncpg.connect(driver_dsn(owner))
    try:
        await connection.execute("TRUNCATE evaluations CASCADE")
        await connection.executemany(
            "INSERT INTO evaluations (tenant_id, id, code, status, language, created_at, "
            "updated_at) VALUES ($1, $2, 'print(1)', 'queued', 'python', $3, $3)",
            [(tenant, id_, AT) for tenant, ids in ROWS.items() for id_ in ids],
        )
    finally:
        await connection.close()
    settings = load_settings(
        {},
        database={"url": service, "pool_size": 1},
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
