"""Lists, gets, counts, timelines and the change feed walk an index led by the tenant.

Migration 0013 put ``tenant_id`` first in every b-tree that serves a list, a filter or the
feed; each statement names its tenant, so each is a range of its tenant's part of an
index. Checked on the statements the service sends: on PostgreSQL the asyncpg ones
(``EXPLAIN``), on SQLite the ones the SQLAlchemy adapters run, caught as they execute
(``EXPLAIN QUERY PLAN``). Two tenants hold rows of the same ids, and the planner has
statistics; a get walks the key ``(tenant_id, id)``.
"""

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.change_feed import ChangeQuery
from application.queries import EvaluationFilter, EvaluationQuery
from application.search import SearchField, TextSearch
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from infrastructure.postgres.changes import SELECT_CHANGES
from infrastructure.postgres.evaluation_pages import page_query
from infrastructure.postgres.evaluations import SELECT_LIVE
from infrastructure.postgres.maintenance import SELECT_CANDIDATES
from infrastructure.postgres.pool import driver_dsn
from infrastructure.postgres.tenancy import begin
from infrastructure.postgres.timeline import SELECT_EVENTS
from infrastructure.sql.changes import SqlChangeFeed
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_queries import SqlEvaluationQueries
from infrastructure.sql.evaluation_repository import SqlEvaluationRepository
from infrastructure.sql.rows import RECORD_COLUMNS
from infrastructure.sql.tenancy import bind_tenant
from infrastructure.sql.timeline import SqlEventLog
from interfaces.settings import DatabaseSettings
from tests.row_security import functions_owned_by_lookup, row_secured
from tests.services import migrated_postgres_database, migrated_sqlite

ROWS = 3000
SINCE = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=ROWS - 100)
# The filters of a page and the index each walks (a page and its total alike).
PAGES = [
    (EvaluationFilter(), "idx_evaluations_created_at"),
    (EvaluationFilter(status=EvaluationStatus.FAILED), "idx_evaluations_live_status"),
    (EvaluationFilter(language="rust"), "idx_evaluations_live_language"),
    (EvaluationFilter(id_prefix="e00012"), "idx_evaluations_live_id_pattern"),
    (EvaluationFilter(created_after=SINCE), "idx_evaluations_created_at"),
]


def _values(tenant: str, index: int) -> tuple[Any, ...]:
    created = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=index)
    status = "failed" if index % 10 == 0 else "completed"
    language = "rust" if index % 7 == 0 else "python"
    # Both tenants hold the same ids (keys are ``(tenant_id, id)``, migration 0015).
    return (tenant, f"e{index:05d}", "print(1)", status, language, created, created)


SEED = [
    *(_values(DEFAULT_TENANT, index) for index in range(ROWS)),
    *(_values("acme", index) for index in range(ROWS)),
]


# --- PostgreSQL: the asyncpg statements. ------------------------------------------------


@pytest.fixture
def postgres() -> Iterator[str]:
    with migrated_postgres_database() as url:
        asyncio.run(_seed_postgres(url))
        yield url


async def _seed_postgres(url: str) -> None:
    connection = await asyncpg.connect(driver_dsn(url))
    try:
        await connection.executemany(
            "INSERT INTO evaluations (tenant_id, id, code, status, language, created_at, "
            "updated_at, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, '{}')",
            SEED,
        )
        await connection.execute(
            "INSERT INTO evaluation_events (tenant_id, evaluation_id, event_id, event_type) "
            "SELECT tenant_id, id, 'started', 'started' FROM evaluations"
        )
        await connection.execute(
            "INSERT INTO audit_log (tenant_id, at, actor, action, evaluation_id, txid) "
            "SELECT tenant_id, created_at, 'k', 'create', id, 1 FROM evaluations"
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def _pg_plan(url: str, statement: str, *arguments: Any) -> str:
    connection = await asyncpg.connect(driver_dsn(url))
    try:
        rows = await connection.fetch(f"EXPLAIN (COSTS OFF) {statement}", *arguments)
    finally:
        await connection.close()
    return "\n".join(row[0] for row in rows)


@pytest.mark.postgres
@pytest.mark.parametrize(("where", "index"), PAGES)
def test_postgres_pages_and_totals_walk_a_tenant_led_index(
    postgres: str, where: EvaluationFilter, index: str
) -> None:
    statement, arguments = page_query(
        EvaluationQuery(filter=where, limit=50), RECORD_COLUMNS, DEFAULT_TENANT
    )
    plan = asyncio.run(_pg_plan(postgres, statement, *arguments))
    assert index in plan, plan
    assert "Seq Scan on evaluations" not in plan, plan


@pytest.mark.postgres
def test_postgres_get_timeline_and_feed_walk_an_index(postgres: str) -> None:
    get = asyncio.run(_pg_plan(postgres, SELECT_LIVE, DEFAULT_TENANT, "e00042"))
    # By the key, or by the live ids' index, which now holds (tenant_id, id) too.
    assert "pk_evaluations" in get or "idx_evaluations_live_id_pattern" in get, get
    events = asyncio.run(_pg_plan(postgres, SELECT_EVENTS, DEFAULT_TENANT, "e00042"))
    # By either index led by (tenant_id, evaluation_id): the timeline's, or the unique
    # (tenant_id, evaluation_id, event_id) one, then sorted (one record's events).
    assert "idx_events_evaluation_id" in events or "uq_events_evaluation_event" in events, events
    arguments = (DEFAULT_TENANT, 0, 0, None, None, 100, None)
    feed = asyncio.run(_pg_plan(postgres, SELECT_CHANGES, *arguments))
    assert "idx_audit_log_feed" in feed, feed
    assert "Seq Scan" not in get + events + feed


# --- SQLite: the SQLAlchemy adapters' statements, caught as they run. -------------------


def _seed_sqlite(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.executemany(
            "INSERT INTO evaluations (tenant_id, id, code, status, language, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*row[:5], _sqlite_time(row[5]), _sqlite_time(row[6])) for row in SEED],
        )
        connection.execute(
            "INSERT INTO evaluation_events (tenant_id, evaluation_id, event_id, event_type) "
            "SELECT tenant_id, id, 'started', 'started' FROM evaluations"
        )
        connection.execute(
            "INSERT INTO audit_log (tenant_id, at, actor, action, evaluation_id) "
            "SELECT tenant_id, created_at, 'k', 'create', id FROM evaluations"
        )
        connection.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()


def _sqlite_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


Use = Callable[[AsyncSession], Awaitable[object]]


def _sqlite_plans(tmp_path: Path, use: Use) -> list[str]:
    """The query plan of each statement ``use`` runs on a seeded SQLite database."""
    path = tmp_path / "plans.db"
    url = migrated_sqlite(path)
    _seed_sqlite(path)
    ran: list[tuple[str, Any]] = []

    def caught(*args: Any) -> None:
        ran.append((args[2], args[3]))

    async def run() -> None:
        engine = create_engine(DatabaseSettings(url=url))
        event.listen(engine.sync_engine, "before_cursor_execute", caught)
        try:
            async with create_session_maker(engine)() as session:
                bind_tenant(session, DEFAULT_TENANT)
                await use(session)
        finally:
            await engine.dispose()

    asyncio.run(run())
    connection = sqlite3.connect(path)
    try:
        return [
            "\n".join(
                str(row[-1])
                for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            for statement, parameters in ran
        ]
    finally:
        connection.close()


def _of(plans: list[str], table: str) -> list[str]:
    return [plan for plan in plans if f" {table} " in f"{plan} "]


@pytest.mark.parametrize(("where", "index"), PAGES)
def test_sqlite_pages_and_totals_walk_a_tenant_led_index(
    tmp_path: Path, where: EvaluationFilter, index: str
) -> None:
    async def page(session: AsyncSession) -> object:
        return await SqlEvaluationQueries(session).list(EvaluationQuery(filter=where, limit=50))

    plans = _of(_sqlite_plans(tmp_path, page), "evaluations")
    assert plans
    assert any(index in plan for plan in plans), plans
    assert all("SCAN evaluations" not in plan for plan in plans), plans


def test_sqlite_get_timeline_and_feed_walk_an_index(tmp_path: Path) -> None:
    async def reads(session: AsyncSession) -> object:
        await SqlEvaluationRepository(session).get(EvaluationId("e00042"))
        await SqlEventLog(session).list(EvaluationId("e00042"))
        return await SqlChangeFeed(session).read(ChangeQuery(limit=100))

    plans = _sqlite_plans(tmp_path, reads)
    get, events, feed = (
        _of(plans, "evaluations"),
        _of(plans, "evaluation_events"),
        _of(plans, "audit_log"),
    )
    assert get and all("USING INDEX sqlite_autoindex_evaluations_1" in plan for plan in get), get
    assert events and all("idx_events_evaluation_id" in plan for plan in events), events
    assert feed and all("idx_audit_log_feed" in plan for plan in feed), feed


# --- PostgreSQL: the lookup functions under row-level security (decision 8). -------------


async def _nested_plans(url: str, role: str, statement: str, *arguments: Any) -> str:
    """The plans of every statement ``statement`` runs, those inside functions too
    (``auto_explain``, loaded by the superuser), run as ``role`` with the default tenant
    set: under row-level security."""
    connection = await asyncpg.connect(driver_dsn(url))
    plans: list[str] = []
    connection.add_log_listener(lambda _connection, message: plans.append(message.message))
    try:
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_level = notice",
            "SET client_min_messages = notice",
            f"SET ROLE {role}",
        ):
            await connection.execute(setting)
        await connection.execute(begin(DEFAULT_TENANT))
        await connection.fetch(statement, *arguments)
        await connection.execute("COMMIT")
    finally:
        await connection.close()
    return "\n".join(plans)


async def _vacuum(url: str) -> None:
    connection = await asyncpg.connect(driver_dsn(url))
    try:
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


@pytest.fixture
def lookups_owned(postgres: str) -> Iterator[tuple[str, str]]:
    """The seeded database, its lookup functions owned by ``crucible_lookup``, and the
    service's role on it; vacuumed, as a table in use is, so that the trigram indexes'
    pending entries are merged (the planner prices a scan of them)."""
    functions_owned_by_lookup(postgres)
    asyncio.run(_vacuum(postgres))
    with row_secured(postgres) as service:
        yield postgres, urlsplit(service).username or ""


SEARCHED = EvaluationFilter(search=TextSearch("needle", fields=frozenset({SearchField.CODE})))


@pytest.mark.postgres
def test_postgres_search_and_subject_lookup_use_their_indexes_under_row_security(
    lookups_owned: tuple[str, str],
) -> None:
    url, role = lookups_owned
    statement, arguments = page_query(
        EvaluationQuery(filter=SEARCHED, limit=50), RECORD_COLUMNS, DEFAULT_TENANT
    )
    search = asyncio.run(_nested_plans(url, role, statement, *arguments))
    assert "crucible_search_ids" in search and "idx_evaluations_code_trgm" in search, search
    subject = SELECT_CANDIDATES[True]
    arguments = [DEFAULT_TENANT, datetime.now(UTC), ["completed"], False, None, None, 10]
    lookup = asyncio.run(_nested_plans(url, role, subject, *arguments, "user", "u1"))
    assert "crucible_subject_ids" in lookup and "idx_evaluations_metadata" in lookup, lookup


async def _analyzed_as(url: str, statement: str, *arguments: Any) -> str:
    """``EXPLAIN ANALYZE`` of ``statement`` run by the role of ``url`` (the service's),
    under row-level security: the plan with each node's actual loops."""
    connection = await asyncpg.connect(driver_dsn(url))
    try:
        rows = await connection.fetch(
            f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {statement}", *arguments
        )
    finally:
        await connection.close()
    return "\n".join(row[0] for row in rows)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "query",
    [
        EvaluationQuery(filter=EvaluationFilter(id_prefix="e00"), limit=50),
        EvaluationQuery(filter=EvaluationFilter(), limit=50, offset=1500),
    ],
    ids=["id_prefix", "offset"],
)
def test_postgres_pages_chosen_in_an_index_are_chosen_once_under_row_security(
    postgres: str, query: EvaluationQuery
) -> None:
    """The page of an ``id_prefix`` or an ``offset`` is chosen in an index, then read by
    key. As the service's role the choice once ran again for every row of the tenant (a
    nested-loop semi-join: 16 s at 20,000 evaluations); every node must run once."""
    statement, arguments = page_query(query, RECORD_COLUMNS, DEFAULT_TENANT)
    with row_secured(postgres) as service:
        plan = asyncio.run(_analyzed_as(service, statement, *arguments))
    assert "rows=50 " in plan or "rows=51 " in plan, plan
    assert set(re.findall(r"loops=(\d+)", plan)) == {"1"}, plan
