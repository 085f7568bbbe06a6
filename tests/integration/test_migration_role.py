"""``MIGRATION_DATABASE_URL``: ``migrate`` connects as the role that owns the tables, not
as the service's ``DATABASE_URL`` (ADR 0032)."""

import asyncio
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from click.testing import CliRunner

from interfaces.cli import main
from tests.services import TEST_DATABASE_URL, require_service

pytestmark = pytest.mark.postgres


async def _admin(*statements: str, database: str = "postgres") -> list[asyncpg.Record]:
    url = _as(TEST_DATABASE_URL, database=database)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows: list[asyncpg.Record] = []
        for statement in statements:
            rows = await connection.fetch(statement)
        return rows
    finally:
        await connection.close()


def _as(url: str, *, database: str, role: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc if role is None else f"{role}@{parts.netloc.rsplit('@', 1)[-1]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


@pytest.fixture
def owned_database() -> Iterator[tuple[str, str]]:
    """An empty database owned by a role of its own (no superuser); its name and the role."""
    require_service("PostgreSQL", TEST_DATABASE_URL, 5432)
    tag = uuid.uuid4().hex[:10]
    database, role = f"crucible_owned_{tag}", f"crucible_owner_{tag}"
    asyncio.run(
        _admin(
            f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS',
            f'CREATE DATABASE "{database}" OWNER "{role}"',
        )
    )
    try:
        yield database, role
    finally:
        asyncio.run(
            _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', f'DROP ROLE "{role}"')
        )


def test_migrate_creates_the_tables_as_the_migration_role(owned_database: tuple[str, str]) -> None:
    database, role = owned_database
    env = {
        # A role that does not exist: the schema change must not go through it.
        "DATABASE_URL": _as(TEST_DATABASE_URL, database=database, role="no_such_role"),
        "MIGRATION_DATABASE_URL": _as(TEST_DATABASE_URL, database=database, role=role),
        "LOG_LEVEL": "WARNING",
    }

    result = CliRunner().invoke(main, ["migrate"], env=env)

    assert result.exit_code == 0, (result.output, result.exception)
    assert f"{role}@" in result.output
    owners = asyncio.run(
        _admin(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
            database=database,
        )
    )
    assert [row["tableowner"] for row in owners] == [role]
