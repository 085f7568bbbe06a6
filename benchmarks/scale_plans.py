"""The server-side half of ``make bench-scale``: the service's SQL under ``EXPLAIN ANALYZE``.

The service's own query code on PostgreSQL runs each read: the list's pages through
``PgEvaluationPages`` (one asyncpg statement, ``page_query``), statistics through
``SqlEvaluationQueries`` (its SQL and parameters captured by a listener as it runs), GET
as the asyncpg ``SELECT_LIVE``; the adapter's time is its p50 in-process. Each statement
is then run ``repeat`` times under ``EXPLAIN (ANALYZE, TIMING OFF)``: the server-side
time is planning + execution, p50, summed over a read's statements. Reads: the list's
first page (unfiltered and filtered), the page about 1,000 pages deep by cursor,
statistics, GET of records not read before.
"""

import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from application.queries import EvaluationFilter, EvaluationQuery, ListCursor
from benchmarks.scale_rows import ScaleData
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from infrastructure.postgres.evaluation_pages import PgEvaluationPages, page_query
from infrastructure.postgres.evaluations import SELECT_LIVE
from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_queries import SqlEvaluationQueries
from infrastructure.sql.rows import RECORD_COLUMNS
from infrastructure.sql.tenancy import bind_tenant
from interfaces.settings import DatabaseSettings

PAGE = 50
DEEP_PAGE = 1000
COLD_READS = 20
FIRST_PAGE_TARGET_MS = 3.0
LIST_TARGET_MS = 5.0
STATISTICS_TARGET_MS = 10.0
SLOW_MS = 1000.0
ACQUIRE_TIMEOUT_S = 10.0


def deep_page(evaluations: int) -> int:
    """The page read by cursor: 1,000, or half the table's pages at small scales."""
    return min(DEEP_PAGE, max(2, evaluations // PAGE // 2))


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: tuple[Any, ...]


@dataclass
class Read:
    """One read path: the statements it ran, their plans and server-side times."""

    name: str
    target_ms: float | None
    statements: list[Statement]
    times_ms: list[list[float]]
    plans: list[str]
    client_ms: float

    @property
    def server_ms(self) -> float:
        """Sum over the statements of each one's p50 (planning + execution)."""
        return sum(statistics.median(times) for times in self.times_ms)

    @property
    def passed(self) -> bool | None:
        return None if self.target_ms is None else self.server_ms < self.target_ms


# -- measuring ---------------------------------------------------------------------------


class Capture:
    """The SQL and parameters an engine sends, as asyncpg receives them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.statements: list[Statement] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, *args: Any) -> None:
        _connection, _cursor, sql, parameters = args[:4]
        self.statements.append(Statement(sql, tuple(parameters or ())))

    def take(self) -> list[Statement]:
        taken = [s for s in self.statements if s.sql.lstrip().upper().startswith("SELECT")]
        self.statements = []
        return taken


def _server_ms(lines: list[str]) -> float:
    """Planning + execution time reported by EXPLAIN ANALYZE."""
    total = 0.0
    for line in lines:
        if line.startswith(("Planning Time:", "Execution Time:")):
            total += float(line.split()[2])
    return total


async def explain(
    connection: asyncpg.Connection, statement: Statement, repeat: int
) -> tuple[list[float], str]:
    """The plan (one run with per-node timing), then ``repeat`` timed runs without it.

    Per-node timing costs a clock read per row and node, which inflates big scans, so the
    times come from ``TIMING OFF`` runs; slow statements (over a second) run 3 times.
    """
    rows = await connection.fetch(
        f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}", *statement.parameters
    )
    lines = [row[0] for row in rows]
    times: list[float] = []
    runs = repeat if _server_ms(lines) < SLOW_MS else min(repeat, 3)
    for _ in range(runs):
        rows = await connection.fetch(
            f"EXPLAIN (ANALYZE, TIMING OFF) {statement.sql}", *statement.parameters
        )
        times.append(_server_ms([row[0] for row in rows]))
    return times, "\n".join(lines)


async def _timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return (time.perf_counter() - started) * 1000


async def measure(dsn: str, data: ScaleData, repeat: int) -> list[Read]:
    settings = DatabaseSettings(url=dsn, pool_size=2, statement_timeout_ms=600_000)
    engine = create_engine(settings)
    pool = await create_pool(settings)
    capture = Capture(engine)
    sessions = create_session_maker(engine)
    connection = await asyncpg.connect(dsn)
    reads: list[Read] = []

    async def explained(
        name: str, target: float | None, statements: list[Statement], client_ms: float
    ) -> None:
        times, plans = [], []
        for statement in statements:
            statement_times, plan = await explain(connection, statement, repeat)
            times.append(statement_times)
            plans.append(plan)
        reads.append(Read(name, target, statements, times, plans, client_ms))
        print(f"  {name}: {reads[-1].server_ms:.2f} ms server-side", file=sys.stderr)

    async def read(
        name: str, target: float | None, call: Callable[[SqlEvaluationQueries], Awaitable[Any]]
    ) -> None:
        async with sessions() as session:
            bind_tenant(session, DEFAULT_TENANT)
            queries = SqlEvaluationQueries(session)
            warm_ms = await _timed(lambda: call(queries))  # statement cache, pool connected
            statements = capture.take()
            runs = repeat if warm_ms < SLOW_MS else min(repeat, 3)
            client_ms = statistics.median(
                [await _timed(lambda: call(queries)) for _ in range(runs)]
            )
            capture.take()
        await explained(name, target, statements, client_ms)

    async def list_page(name: str, target: float, query: EvaluationQuery) -> None:
        """``PgEvaluationPages.list`` timed, and the one statement it runs explained."""
        pages = PgEvaluationPages(PgTransaction(pool, ACQUIRE_TIMEOUT_S, tenant=DEFAULT_TENANT))
        warm_ms = await _timed(lambda: pages.list(query))  # prepared, pool connected
        runs = repeat if warm_ms < SLOW_MS else min(repeat, 3)
        client_ms = statistics.median(
            [await _timed(lambda: pages.list(query)) for _ in range(runs)]
        )
        sql, arguments = page_query(query, RECORD_COLUMNS, DEFAULT_TENANT)
        await explained(name, target, [Statement(sql, tuple(arguments))], client_ms)

    try:
        # The cursor after ``depth`` pages: the read is page ``depth + 1``.
        depth = deep_page(data.evaluations)
        deep = await connection.fetchrow(
            "SELECT created_at, id FROM evaluations WHERE deleted_at IS NULL "
            "ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
            depth * PAGE - 1,
        )
        assert deep is not None
        cursor = ListCursor(created_at=deep["created_at"], id=EvaluationId(deep["id"]))
        filtered = EvaluationFilter(status=EvaluationStatus.COMPLETED, language="rust")
        await list_page("list, first page", FIRST_PAGE_TARGET_MS, EvaluationQuery(limit=PAGE))
        await list_page(
            "list, first page, status=completed&language=rust",
            LIST_TARGET_MS,
            EvaluationQuery(filter=filtered, limit=PAGE),
        )
        await list_page(
            "list, the page after ~1,000 pages, by cursor",
            LIST_TARGET_MS,
            EvaluationQuery(limit=PAGE, cursor=cursor),
        )
        await read("statistics", STATISTICS_TARGET_MS, lambda q: q.statistics())
        reads.append(await cold_reads(connection, data))
    finally:
        await connection.close()
        await pool.close()
        await engine.dispose()
    return reads


async def cold_reads(connection: asyncpg.Connection, data: ScaleData) -> Read:
    """``SELECT_LIVE`` (GET by id) of records no read has touched, each once."""
    rng = random.Random(7)  # noqa: S311 - sampling
    ids = [data.evaluation_id(rng.randrange(data.evaluations)) for _ in range(COLD_READS)]
    times: list[float] = []
    plan = ""
    client: list[float] = []
    for index, evaluation_id in enumerate(ids):
        if index % 2:
            started = time.perf_counter()
            await connection.fetchrow(SELECT_LIVE, DEFAULT_TENANT, evaluation_id)
            client.append((time.perf_counter() - started) * 1000)
            continue
        rows = await connection.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) {SELECT_LIVE}", DEFAULT_TENANT, evaluation_id
        )
        plan = "\n".join(row[0] for row in rows)
        times.append(_server_ms(plan.splitlines()))
    return Read(
        "GET /evaluations/{id}, records not read before",
        None,
        [Statement(SELECT_LIVE, (ids[-2],))],
        [times],
        [plan],
        statistics.median(client),
    )
