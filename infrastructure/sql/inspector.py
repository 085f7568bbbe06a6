"""Measures the database for health, overview and details pages."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from application.backends import Backend
from application.ports.backend_inspector import BackendInspector
from application.ports.health_probe import HealthProbe
from application.queries import BackendReport, MetricValue
from domain.timestamps import as_utc
from infrastructure.sql.errors import short_reason
from infrastructure.sql.tables import ALL_TABLES, evaluation_events, evaluations, log_chunks


def _instant(value: datetime | str) -> str:
    """ISO 8601 in UTC of a timestamp as an aggregate returns it (SQLite: its stored text)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return as_utc(moment).isoformat()


class SqlDatabaseInspector(BackendInspector, HealthProbe):
    """``BackendInspector`` named ``database``: counts measured now, never raises.

    Uses its own short session so an inspection never joins a request's transaction.
    """

    name: str = Backend.DATABASE

    def __init__(
        self, session_maker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        self._session_maker = session_maker
        self._engine = engine
        self._type = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        try:
            async with self._session_maker() as session:
                metrics = await self._metrics(session)
                details = await self._details(session) if detailed else {}
        except Exception as error:
            return BackendReport(
                name=self.name, type=self._type, status="unavailable", error=short_reason(error)
            )
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
        """``SELECT 1`` on a pooled connection: reachable or not, nothing counted."""
        try:
            async with self._engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
        except Exception as error:
            return BackendReport(
                name=self.name, type=self._type, status="unavailable", error=short_reason(error)
            )
        return BackendReport(name=self.name, type=self._type, status="healthy")

    async def _metrics(self, session: AsyncSession) -> dict[str, MetricValue]:
        live = sa.func.count().filter(evaluations.c.deleted_at.is_(None))
        deleted = sa.func.count().filter(evaluations.c.deleted_at.is_not(None))
        # In the same pass as the counts, which read every row anyway.
        oldest = sa.func.min(evaluations.c.created_at).filter(evaluations.c.deleted_at.is_(None))
        counts = (
            await session.execute(sa.select(live, deleted, oldest).select_from(evaluations))
        ).one()
        events = await session.scalar(sa.select(sa.func.count()).select_from(evaluation_events))
        chunks = await session.scalar(sa.select(sa.func.count()).select_from(log_chunks))
        return {
            "evaluations": int(counts[0]),
            "deleted": int(counts[1]),
            "events": int(events or 0),
            "log_chunks": int(chunks or 0),
            "size_bytes": await self._size_bytes(session),
            "oldest_record": None if counts[2] is None else _instant(counts[2]),
        }

    async def _size_bytes(self, session: AsyncSession) -> int:
        if self._type == "postgresql":
            sizes = [sa.func.pg_total_relation_size(table.name) for table in ALL_TABLES]
            row = (await session.execute(sa.select(*sizes))).one()
            return sum(int(size or 0) for size in row)
        page_count = await session.scalar(sa.text("PRAGMA page_count"))
        page_size = await session.scalar(sa.text("PRAGMA page_size"))
        return int(page_count or 0) * int(page_size or 0)

    async def _details(self, session: AsyncSession) -> dict[str, MetricValue]:
        details: dict[str, MetricValue] = {}
        for table in ALL_TABLES:
            rows = await session.scalar(sa.select(sa.func.count()).select_from(table))
            details[f"{table.name}_rows"] = int(rows or 0)
            details[f"{table.name}_bytes"] = await self._table_bytes(session, table.name)
        if self._type == "postgresql":
            details["server_version"] = await session.scalar(sa.text("SHOW server_version"))
            details["database_bytes"] = await session.scalar(
                sa.text("SELECT pg_database_size(current_database())")
            )
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

    async def _table_bytes(self, session: AsyncSession, table: str) -> int | None:
        if self._type == "postgresql":
            value = await session.scalar(
                sa.text("SELECT pg_total_relation_size(:table)"), {"table": table}
            )
            return None if value is None else int(value)
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
