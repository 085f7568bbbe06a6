"""Migration stairway: every revision upgrades, downgrades and upgrades again.

Run on SQLite and PostgreSQL, since one history serves both. At head the
schema must match ``infrastructure.sql.tables`` so the adapters and the
migrations never drift apart.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from infrastructure.sql.migrate import alembic_config, downgrade, upgrade, upgrade_engine
from infrastructure.sql.tables import ALL_TABLES, metadata
from tests.services import temporary_postgres_database

TABLES = {table.name for table in ALL_TABLES}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        # A missing parent directory is created by the migration runner.
        yield f"sqlite+aiosqlite:///{tmp_path / 'not' / 'yet' / 'storage.db'}"
        return
    with temporary_postgres_database() as url:
        yield url


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _inspect(url: str, probe: Any) -> Any:
    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(probe)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def test_stairway(empty_database_url: str) -> None:
    url = empty_database_url
    revisions = _revisions()
    assert revisions, "no migrations found"
    previous = "base"
    for revision in revisions:
        upgrade(url, revision)
        assert _inspect(url, _current) == revision
        downgrade(url, previous)
        assert _inspect(url, _current) == (None if previous == "base" else previous)
        upgrade(url, revision)
        previous = revision
    assert _inspect(url, _tables) >= TABLES
    downgrade(url, "base")
    assert not (_inspect(url, _tables) & TABLES)


def test_head_matches_the_tables_module(empty_database_url: str) -> None:
    upgrade(empty_database_url)

    def differences(connection: Connection) -> list[Any]:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
        diff = [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table")]
        # SQLite's search tables (an FTS5 table and whose rows it holds) are not in the
        # metadata; the trigram indexes and the metadata index (migration 0011) it
        # declares exist on PostgreSQL alone.
        diff = [
            d
            for d in diff
            if not (
                isinstance(d, tuple)
                and "index" in d[0]
                and (
                    d[1].table.name == "search_rows"
                    or (
                        connection.dialect.name == "sqlite"
                        and (d[1].name.endswith("_trgm") or d[1].name == "idx_evaluations_metadata")
                    )
                )
            )
        ]
        if connection.dialect.name == "sqlite":
            # SQLite reflection cannot read back ``DESC`` index columns, so such an
            # index shows up as removed and re-added under the same name: noise.
            names = [d[1].name for d in diff if isinstance(d, tuple) and "index" in d[0]]
            diff = [
                d
                for d in diff
                if not (isinstance(d, tuple) and "index" in d[0] and names.count(d[1].name) == 2)
            ]
        return diff

    assert _inspect(empty_database_url, differences) == []


@pytest.mark.postgres
def test_postgres_compresses_payload_columns_with_lz4() -> None:
    with temporary_postgres_database() as url:
        upgrade(url)

        def compression(connection: Connection) -> dict[str, str]:
            rows = connection.execute(
                sa.text(
                    "SELECT attname, attcompression::text FROM pg_attribute "
                    "WHERE attrelid = 'evaluations'::regclass "
                    "AND attname IN ('code', 'output', 'error')"
                )
            )
            return {name: str(method) for name, method in rows}

        assert _inspect(url, compression) == {"code": "l", "output": "l", "error": "l"}


def test_upgrade_engine_runs_inside_an_event_loop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"

    async def run() -> set[str]:
        engine = create_async_engine(url)
        try:
            await upgrade_engine(engine)
            async with engine.connect() as connection:
                return await connection.run_sync(_tables)
        finally:
            await engine.dispose()

    assert asyncio.run(run()) >= TABLES
