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
from click.testing import CliRunner
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from infrastructure.sql.migrate import alembic_config, downgrade, upgrade, upgrade_engine
from infrastructure.sql.tables import ALL_TABLES, metadata
from interfaces.cli import main as cli
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


def _run(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run ``statements`` in one transaction; the rows of the last one (none for a write)."""

    def run(connection: Connection) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            result = connection.execute(sa.text(statement))
            rows = [tuple(row) for row in result] if result.returns_rows else []
        connection.commit()
        return rows

    return list(_inspect(url, run))


# Rows of every table as migration 0012 left them, each counter moved by its trigger.
ROWS_AT_0012 = [
    "INSERT INTO evaluations (id, code, status, runtime_ms) VALUES ('a', 'x', 'completed', 5)",
    "INSERT INTO evaluations (id, code, status, language, runtime_ms) "
    "VALUES ('b', 'y', 'failed', 'rust', 2000)",
    "INSERT INTO evaluations (id, code, status, deleted_at) "
    "VALUES ('c', 'z', 'completed', CURRENT_TIMESTAMP)",
    "INSERT INTO evaluation_events (evaluation_id, event_id, event_type, message) "
    "VALUES ('a', 'e1', 'started', 'm')",
    "INSERT INTO log_chunks (evaluation_id, start_offset, content) VALUES ('a', 0, 'hello')",
    "UPDATE evaluations SET log_size = 5 WHERE id = 'a'",
    "INSERT INTO audit_log (at, actor, action, evaluation_id) "
    "VALUES (CURRENT_TIMESTAMP, 'k', 'create', 'a')",
    "INSERT INTO idempotency_keys (caller, key, expires_at, lease_until) "
    "VALUES ('k', 'i', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "INSERT INTO journal_applied (entry_id) VALUES ('j1')",
]
COUNTED = (
    "SUM(evaluations), SUM(runtime_count), SUM(runtime_sum), SUM(events), SUM(log_bytes), "
    "SUM(inline_payloads)"
)
COUNTERS = (
    f"SELECT status, language, {COUNTED} FROM evaluation_counters "
    "GROUP BY status, language HAVING SUM(evaluations) <> 0 ORDER BY status, language"
)
TENANT_COUNTERS = (
    f"SELECT tenant_id, status, language, {COUNTED} FROM evaluation_counters "
    "GROUP BY tenant_id, status, language HAVING SUM(evaluations) <> 0 "
    "ORDER BY tenant_id, status, language"
)
RUNTIMES = "SELECT runtime_ms, SUM(count) FROM evaluation_runtimes GROUP BY runtime_ms "
TENANT_RUNTIMES = (
    "SELECT tenant_id, runtime_ms, SUM(count) FROM evaluation_runtimes "
    "GROUP BY tenant_id, runtime_ms HAVING SUM(count) <> 0 ORDER BY tenant_id, runtime_ms"
)


def test_migrate_from_0012_puts_existing_rows_in_the_default_tenant(
    empty_database_url: str,
) -> None:
    """``storage-service migrate`` over a database at 0012 that holds rows: every row
    becomes the default tenant's, its counters too; afterwards the counters keep each
    tenant apart, the tenant's rule is enforced, and a downgrade counts them together."""
    url = empty_database_url
    upgrade(url, "0012")
    _run(url, *ROWS_AT_0012)
    counted = _run(url, COUNTERS)
    runtimes = _run(url, RUNTIMES + "HAVING SUM(count) <> 0 ORDER BY runtime_ms")
    assert counted == [
        ("completed", "python", 1, 1, 5, 1, 5, 0),
        ("failed", "rust", 1, 1, 2000, 0, 0, 0),
    ]

    migrated = CliRunner().invoke(cli, ["migrate"], env={"DATABASE_URL": url})
    assert migrated.exit_code == 0, migrated.output
    assert _inspect(url, _current) == _revisions()[-1]

    for table in TABLES - {"evaluation_keys"}:  # made empty by 0014 (ADR 0033)
        assert _run(url, f"SELECT DISTINCT tenant_id FROM {table}") == [("default",)], table
    assert _run(url, TENANT_COUNTERS) == [("default", *row) for row in counted]
    assert _run(url, TENANT_RUNTIMES) == [("default", *row) for row in runtimes]

    # Another tenant's record is counted apart, through insert, update and delete.
    _run(
        url,
        "INSERT INTO evaluations (tenant_id, id, code, status, runtime_ms) "
        "VALUES ('acme', 'd', 'w', 'completed', 7)",
        "INSERT INTO evaluations (tenant_id, id, code, status, runtime_ms) "
        "VALUES ('acme', 'e', 'v', 'queued', NULL)",
        "UPDATE evaluations SET status = 'running' WHERE id = 'e'",
        "INSERT INTO evaluations (tenant_id, id, code, status) VALUES ('acme', 'f', 'u', 'queued')",
        "DELETE FROM evaluations WHERE id = 'f'",
    )
    assert _run(url, TENANT_COUNTERS) == [
        ("acme", "completed", "python", 1, 1, 7, 0, 0, 0),
        ("acme", "running", "python", 1, 0, 0, 0, 0, 0),
        *[("default", *row) for row in counted],
    ]
    assert _run(url, TENANT_RUNTIMES) == [
        ("acme", 7, 1),
        *[("default", *row) for row in runtimes],
    ]
    for tenant in ("", "Acme", "a/b", "a:b", "-a", "a" * 64, "é"):
        with pytest.raises(sa.exc.DBAPIError):  # the CHECK (or, 64 long, the type)
            _run(url, f"INSERT INTO journal_applied (tenant_id, entry_id) VALUES ('{tenant}', 'x')")
    _run(url, f"INSERT INTO journal_applied (tenant_id, entry_id) VALUES ('{'a' * 63}', 'x')")

    assert [row[:3] for row in counted] == [("completed", "python", 1), ("failed", "rust", 1)]
    downgrade(url, "0012")
    assert _run(url, COUNTERS) == [
        ("completed", "python", 2, 2, 12, 1, 5, 0),
        ("failed", "rust", 1, 1, 2000, 0, 0, 0),
        ("running", "python", 1, 0, 0, 0, 0, 0),
    ]
    assert _run(url, RUNTIMES + "HAVING SUM(count) <> 0 ORDER BY runtime_ms") == [
        (5, 1),
        (7, 1),
        (2000, 1),
    ]


# Rows as migration 0014 left them: ids are global, two tenants hold some.
ROWS_AT_0014 = [
    "INSERT INTO evaluations (tenant_id, id, code, status, runtime_ms) "
    "VALUES ('default', 'a', 'x', 'completed', 5)",
    "INSERT INTO evaluations (tenant_id, id, code, status) VALUES ('default', 'c', 'z', 'queued')",
    "INSERT INTO evaluations (tenant_id, id, code, status) VALUES ('acme', 'b', 'y', 'failed')",
    *(
        "INSERT INTO evaluation_events (tenant_id, evaluation_id, event_id, event_type, message) "
        f"VALUES ('{tenant}', '{owner}', 'e1', 'started', '{tenant} text')"
        for tenant, owner in (("default", "a"), ("acme", "b"))
    ),
    *(
        "INSERT INTO log_chunks (tenant_id, evaluation_id, start_offset, content) "
        f"VALUES ('{tenant}', '{owner}', 0, 'hello')"
        for tenant, owner in (("default", "a"), ("acme", "b"))
    ),
    "INSERT INTO idempotency_keys (caller, key, expires_at, lease_until) "
    "VALUES ('k', 'i', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
]
# What 0015 lets a second tenant hold: the same record id, event id, offset and key.
SAME_IDS_IN_ACME = [
    "INSERT INTO evaluations (tenant_id, id, code, status) VALUES ('acme', 'a', 'w', 'queued')",
    "INSERT INTO evaluation_events (tenant_id, evaluation_id, event_id, event_type, message) "
    "VALUES ('acme', 'a', 'e1', 'started', 'acme text')",
    "INSERT INTO log_chunks (tenant_id, evaluation_id, start_offset, content) "
    "VALUES ('acme', 'a', 0, 'hi')",
    "INSERT INTO idempotency_keys (tenant_id, caller, key, expires_at, lease_until) "
    "VALUES ('acme', 'k', 'i', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
]
EVENT_COUNTS = "SELECT tenant_id, id, event_count FROM evaluations ORDER BY tenant_id, id"
TIMELINES = (
    "SELECT tenant_id, evaluation_id, 'event' FROM evaluation_events UNION ALL "
    "SELECT tenant_id, evaluation_id, 'log' FROM log_chunks ORDER BY 1, 2, 3"
)


def _enforced(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """``_run`` with SQLite's foreign keys enforced, as the service's connections have them."""
    pragma = ["PRAGMA foreign_keys=ON"] if url.startswith("sqlite") else []
    return _run(url, *pragma, *statements)


def test_migrate_from_0014_keys_every_row_by_its_tenant(empty_database_url: str) -> None:
    """0015 keeps the rows, the counters and ``event_count``; then a second tenant holds the
    same ids, whose events and logs point at its own record only; a downgrade refuses while
    two tenants share an id or a key, and keeps the rows once none do."""
    url = empty_database_url
    upgrade(url, "0014")
    _run(url, *ROWS_AT_0014)
    counted = _run(url, TENANT_COUNTERS)
    upgrade(url, "0015")
    assert _inspect(url, _current) == "0015"
    assert _run(url, TENANT_COUNTERS) == counted
    assert _run(url, EVENT_COUNTS) == [("acme", "b", 1), ("default", "a", 1), ("default", "c", 0)]

    _run(url, *SAME_IDS_IN_ACME)
    assert _run(url, EVENT_COUNTS)[:2] == [("acme", "a", 1), ("acme", "b", 1)]
    assert _run(url, "SELECT COUNT(*) FROM idempotency_keys WHERE key = 'i'") == [(2,)]
    with pytest.raises(sa.exc.IntegrityError):  # 'c' is the default tenant's only
        _enforced(
            url,
            "INSERT INTO evaluation_events (tenant_id, evaluation_id, event_id, event_type) "
            "VALUES ('acme', 'c', 'e1', 'started')",
        )
    with pytest.raises(RuntimeError, match=r"evaluation ids held by more than one tenant.*\ba\b"):
        downgrade(url, "0014")
    assert _inspect(url, _current) == "0015"

    _enforced(url, "DELETE FROM evaluations WHERE tenant_id = 'default' AND id = 'a'")
    assert _run(url, TIMELINES) == [
        ("acme", "a", "event"),
        ("acme", "a", "log"),
        ("acme", "b", "event"),
        ("acme", "b", "log"),
    ]
    if url.startswith("sqlite"):  # the search rows of the other tenant's 'a' stay
        owners = "SELECT DISTINCT tenant_id, evaluation_id FROM search_rows ORDER BY 1, 2"
        assert _run(url, owners) == [("acme", "a"), ("acme", "b"), ("default", "c")]
    with pytest.raises(RuntimeError, match=r"idempotency keys .* more than one tenant.*k/i"):
        downgrade(url, "0014")

    _run(url, "DELETE FROM idempotency_keys WHERE tenant_id = 'acme'")
    kept = _run(url, EVENT_COUNTS), _run(url, TIMELINES), _run(url, TENANT_COUNTERS)
    downgrade(url, "0014")
    assert _inspect(url, _current) == "0014"
    assert (_run(url, EVENT_COUNTS), _run(url, TIMELINES), _run(url, TENANT_COUNTERS)) == kept
    upgrade(url)
    assert (_run(url, EVENT_COUNTS), _run(url, TIMELINES), _run(url, TENANT_COUNTERS)) == kept
    # Keyed by tenant again: the default tenant may take acme's 'b'.
    _run(
        url,
        "INSERT INTO evaluations (tenant_id, id, code, status) VALUES ('default', 'b', 'v', 'queued')",
    )


ROW_SECURITY = (
    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, count(p.polname), "
    "pg_get_expr(d.adbin, d.adrelid) FROM pg_class c "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' "
    "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
    "LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = 'tenant_isolation' "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
    "GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity, d.adbin, d.adrelid "
    "ORDER BY c.relname"
)
LOOKUPS = "SELECT proname FROM pg_proc WHERE proname LIKE 'crucible\\_%\\_ids' ORDER BY proname"


@pytest.mark.postgres
def test_migrate_from_0015_puts_every_tenant_table_under_row_security() -> None:
    """0015 → 0016: every table with ``tenant_id`` ``ENABLE``d and ``FORCE``d, its policy,
    the setting as the column's default, the two lookup functions; a downgrade removes
    them all, an upgrade puts them back. The rows stay."""
    with temporary_postgres_database() as url:
        upgrade(url, "0015")
        _run(url, ROWS_AT_0012[0])
        before = _run(url, ROW_SECURITY)
        assert {(name, rls, force, policies) for name, rls, force, policies, _ in before} == {
            (name, False, False, 0) for name in TABLES
        }

        upgrade(url, "0016")
        secured = _run(url, ROW_SECURITY)
        assert [row[0] for row in secured] == sorted(TABLES)
        assert all(
            row[1:] == (True, True, 1, "current_setting('crucible.tenant'::text)")
            for row in secured
        ), secured
        assert [row[0] for row in _run(url, LOOKUPS)] == [
            "crucible_search_ids",
            "crucible_subject_ids",
        ]
        assert _run(url, "SELECT tenant_id, id FROM evaluations") == [("default", "a")]

        downgrade(url, "0015")
        assert _run(url, ROW_SECURITY) == before
        assert _run(url, LOOKUPS) == []
        upgrade(url, "0016")
        assert _run(url, ROW_SECURITY) == secured
