"""Measures the database for health, overview and details pages: one tenant's rows
(ADR 0032; under row-level security a session sees no other), the deployment's sizes.

Nothing here reads a whole table, so an inspection costs the same at a thousand or a
million records. Live records and their events come from the counters the write
triggers keep (migration 0003; ``events`` is the events of live records, as in
``/statistics``), soft-deleted records from the index that holds only them (migration
0006), the oldest live record from one end of the tenant's part of the ``created_at``
index (migration 0013), sizes from the catalog. Rows per table: ``evaluations`` exactly
(live + soft-deleted); any other table exactly (the tenant's rows) while the catalog puts
it under ``EXACT_ROWS_BELOW`` rows, and above that PostgreSQL's own running estimate
(``pg_stat_get_live_tuples``, which every insert and delete moves, autovacuum or not, a
second or so late), of every tenant's. ``estimated_row_counts`` in the details names the
tables whose figure is an estimate. SQLite, the embedded store, counts every table
exactly.
"""

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from application.backends import Backend
from application.ports.backend_inspector import BackendInspector
from application.ports.health_probe import HealthProbe
from application.queries import BackendReport, MetricValue
from domain.tenancy import DEFAULT_TENANT, TenantId
from domain.timestamps import as_utc
from infrastructure.sql.errors import REFUSALS, short_reason
from infrastructure.sql.tables import (
    ALL_TABLES,
    evaluation_counters,
    evaluations,
    live_evaluations,
    log_chunks,
)
from infrastructure.sql.tenancy import bind_tenant

# A request refused a connection this recently makes the database ``degraded`` in /health.
REFUSALS_SHOWN_S = 10.0
# A table the catalog estimates below this many rows is counted exactly (a few ms).
EXACT_ROWS_BELOW = 10_000
_CATALOG = sa.text(
    "SELECT c.relname, pg_total_relation_size(c.oid) AS bytes, "
    "greatest(c.reltuples, 0)::bigint AS analyzed, pg_stat_get_live_tuples(c.oid) AS live "
    "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
    "AND c.relname IN :names AND c.relkind IN ('r', 'p')"
).bindparams(sa.bindparam("names", expanding=True))


def _instant(value: datetime | str) -> str:
    """ISO 8601 in UTC of a timestamp as the database returns it (SQLite: its stored text)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return as_utc(moment).isoformat()


class _Figures:
    """Live records and their events, soft-deleted records and the oldest live record, of
    one tenant."""

    def __init__(self, row: sa.Row[Any]) -> None:
        live, events, deleted, oldest = tuple(row)
        self.live = int(live or 0)
        self.events = int(events or 0)
        self.deleted = int(deleted or 0)
        self.oldest = None if oldest is None else _instant(oldest)

    @staticmethod
    def statement(tenant: TenantId) -> sa.Select[Any]:
        """One statement: two sums over the tenant's counters, a count over the index of
        soft-deleted records, one end of the tenant's part of the ``created_at`` index."""
        counters = evaluation_counters.c
        mine = evaluations.c.tenant_id == tenant
        return sa.select(
            sa.select(sa.func.sum(counters.evaluations))
            .where(counters.tenant_id == tenant)
            .scalar_subquery(),
            sa.select(sa.func.sum(counters.events))
            .where(counters.tenant_id == tenant)
            .scalar_subquery(),
            sa.select(sa.func.count())
            .where(mine, evaluations.c.deleted_at.is_not(None))
            .scalar_subquery(),
            sa.select(evaluations.c.created_at)
            .where(mine, live_evaluations)
            .order_by(evaluations.c.created_at, evaluations.c.id)
            .limit(1)
            .scalar_subquery(),
        )


def _count_of(table: sa.Table, tenant: TenantId) -> sa.ScalarSelect[int]:
    return (
        sa.select(sa.func.count())
        .select_from(table)
        .where(table.c.tenant_id == tenant)
        .scalar_subquery()
    )


async def _count(session: AsyncSession, table: sa.Table, tenant: TenantId) -> int:
    return int(await session.scalar(sa.select(_count_of(table, tenant))) or 0)


class _Table:
    def __init__(self, name: str, rows: int | None, size: int | None, *, estimated: bool) -> None:
        self.name = name
        self.rows = rows
        self.bytes = size
        self.estimated = estimated


class SqlDatabaseInspector(BackendInspector, HealthProbe):
    """``BackendInspector`` named ``database``: figures measured now, never raises.

    Uses its own short session so an inspection never joins a request's transaction. Its
    rows are ``tenant``'s (under row-level security the only ones it could see); the
    catalog's figures (estimates, sizes) are the deployment's.
    """

    name: str = Backend.DATABASE

    def __init__(
        self,
        session_maker: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        tenant: TenantId = DEFAULT_TENANT,
    ) -> None:
        self._tenant = tenant
        self._session_maker = session_maker
        self._engine = engine
        self._type = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        try:
            async with self._session_maker() as session:
                bind_tenant(session, self._tenant)
                statement = _Figures.statement(self._tenant)
                figures = _Figures((await session.execute(statement)).one())
                tables = await self._tables(session, figures, detailed=detailed)
                size = await self._size_bytes(session, tables)
                details = await self._details(session, tables) if detailed else {}
        except Exception as error:
            return BackendReport(
                name=self.name, type=self._type, status="unavailable", error=short_reason(error)
            )
        chunks = tables[log_chunks.name]
        metrics: dict[str, MetricValue] = {
            "evaluations": figures.live,
            "deleted": figures.deleted,
            "events": figures.events,
            "log_chunks": chunks.rows,
            "size_bytes": size,
            "oldest_record": figures.oldest,
        }
        listings: dict[str, list[str]] = {}
        if detailed:
            # str(): SQLAlchemy's names are ``quoted_name``, which no encoder knows.
            listings = {
                f"{table.name}_columns": [str(column.name) for column in table.c]
                for table in ALL_TABLES
            }
        return BackendReport(
            name=self.name,
            type=self._type,
            status="healthy",
            metrics=metrics,
            details=details,
            listings=listings,
        )

    async def probe(self) -> BackendReport:
        """``SELECT 1`` on a pooled connection: reachable or not, nothing counted.

        Reachable, it is still ``degraded`` when a request of this process was left without
        a connection less than ``REFUSALS_SHOWN_S`` ago (no slot left on the server, or
        none free in the pool): the probe's own connection may be open meanwhile.
        """
        try:
            async with self._engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
        except Exception as error:
            return BackendReport(
                name=self.name, type=self._type, status="unavailable", error=short_reason(error)
            )
        refused = REFUSALS.since(REFUSALS_SHOWN_S)
        if refused is not None:
            return BackendReport(
                name=self.name,
                type=self._type,
                status="degraded",
                error=f"{refused.limit}: a request got no connection "
                f"{time.monotonic() - refused.at:.1f} s ago ({refused.reason})",
            )
        return BackendReport(name=self.name, type=self._type, status="healthy")

    async def _tables(
        self, session: AsyncSession, figures: _Figures, *, detailed: bool
    ) -> dict[str, _Table]:
        """Rows and bytes of every table (the rows of ``log_chunks`` only unless ``detailed``)."""
        exact = {evaluations.name: figures.live + figures.deleted}
        wanted = {t.name for t in ALL_TABLES if detailed or t.name == log_chunks.name}
        if self._type == "sqlite":
            return await self._sqlite_tables(session, exact, wanted, detailed=detailed)
        catalog = {
            str(name): (int(size or 0), int(analyzed or 0), int(live or 0))
            for name, size, analyzed, live in await session.execute(
                _CATALOG, {"names": [t.name for t in ALL_TABLES]}
            )
        }
        tables: dict[str, _Table] = {}
        small: list[sa.Table] = []
        for table in ALL_TABLES:
            size, analyzed, live = catalog.get(table.name, (0, 0, 0))
            rows: int | None = exact.get(table.name)
            estimated = False
            if rows is None and table.name in wanted:
                if max(analyzed, live) < EXACT_ROWS_BELOW:
                    small.append(table)
                else:
                    rows, estimated = live or analyzed, True
            tables[table.name] = _Table(table.name, rows, size, estimated=estimated)
        if small:  # one statement counts them all
            counted = [_count_of(table, self._tenant) for table in small]
            counts = (await session.execute(sa.select(*counted))).one()
            for table, count in zip(small, counts, strict=True):
                tables[table.name].rows = int(count or 0)
        return tables

    async def _sqlite_tables(
        self, session: AsyncSession, exact: dict[str, int], wanted: set[str], *, detailed: bool
    ) -> dict[str, _Table]:
        tables: dict[str, _Table] = {}
        for table in ALL_TABLES:
            if table.name in exact or table.name in wanted:
                counted = exact.get(table.name)
                if counted is None:
                    counted = await _count(session, table, self._tenant)
                size = await self._sqlite_bytes(session, table.name) if detailed else None
                tables[table.name] = _Table(table.name, counted, size, estimated=False)
        return tables

    async def _size_bytes(self, session: AsyncSession, tables: dict[str, _Table]) -> int:
        if self._type == "postgresql":
            return sum(table.bytes or 0 for table in tables.values())
        page_count = await session.scalar(sa.text("PRAGMA page_count"))
        page_size = await session.scalar(sa.text("PRAGMA page_size"))
        return int(page_count or 0) * int(page_size or 0)

    async def _details(
        self, session: AsyncSession, tables: dict[str, _Table]
    ) -> dict[str, MetricValue]:
        details: dict[str, MetricValue] = {}
        for table in tables.values():
            details[f"{table.name}_rows"] = None if table.rows is None else int(table.rows)
            details[f"{table.name}_bytes"] = table.bytes
        details["estimated_row_counts"] = ", ".join(t.name for t in tables.values() if t.estimated)
        if self._type == "postgresql":
            version, size = (
                await session.execute(
                    sa.text(
                        "SELECT current_setting('server_version'), "
                        "pg_database_size(current_database())"
                    )
                )
            ).one()
            details["server_version"], details["database_bytes"] = version, size
        else:
            details["server_version"] = await session.scalar(sa.text("SELECT sqlite_version()"))
            details["journal_mode"] = await session.scalar(sa.text("PRAGMA journal_mode"))
        pool = self._engine.pool
        size = getattr(pool, "size", None)
        details["pool_class"] = type(pool).__name__
        details["pool_size"] = size() if callable(size) else None
        checked_out = getattr(pool, "checkedout", None)
        details["pool_checked_out"] = checked_out() if callable(checked_out) else None
        return details

    async def _sqlite_bytes(self, session: AsyncSession, table: str) -> int | None:
        # dbstat is an optional SQLite build feature; without it the size is unknown.
        has_dbstat = await session.scalar(
            sa.text("SELECT count(*) FROM pragma_module_list WHERE name = 'dbstat'")
        )
        if not has_dbstat:
            return None
        value = await session.scalar(
            sa.text("SELECT SUM(pgsize) FROM dbstat WHERE name = :table"), {"table": table}
        )
        return None if value is None else int(value)
