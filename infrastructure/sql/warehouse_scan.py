"""``WarehouseScan`` in SQL (SQLAlchemy Core; SQLite's): keyset pages, the shared mapping.

PostgreSQL has a faster one (``infrastructure.postgres.warehouse_scan``) that lets the
database shape the rows into Arrow columns itself.
"""

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.warehouse import RowBatch, Table, WarehouseRow, WarehouseScan
from application.warehouse_rows import common_keys, event_row, log_row, row_of
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from domain.timeline import LogChunk
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import evaluation_from_row
from infrastructure.sql.tables import evaluation_events, evaluations, log_chunks
from infrastructure.sql.timeline import event_from_row

BATCH = 2000
_NEWEST_FIRST = (evaluations.c.created_at.desc(), evaluations.c.id.desc())


def _live(tenant: TenantId) -> sa.ColumnElement[bool]:
    """``tenant``'s live records."""
    return sa.and_(evaluations.c.tenant_id == tenant, evaluations.c.deleted_at.is_(None))


class SqlWarehouseScan(WarehouseScan):
    def __init__(self, session: AsyncSession, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._session = session

    async def _page(
        self, tenant: TenantId, after: tuple[object, str] | None
    ) -> list[sa.RowMapping]:
        c = evaluations.c
        statement = (
            sa.select(evaluations).where(_live(tenant)).order_by(*_NEWEST_FIRST).limit(BATCH)
        )
        if after is not None:
            created_at, evaluation_id = after
            statement = statement.where(
                sa.tuple_(c.created_at, c.id)
                < sa.tuple_(
                    sa.literal(created_at, c.created_at.type), sa.literal(evaluation_id, c.id.type)
                )
            )
        with translate_errors():
            return list((await self._session.execute(statement)).mappings().all())

    async def common_keys(self, tenant: TenantId) -> list[str]:
        rows = await self._page(tenant, None)
        return common_keys([evaluation_from_row(row, self._seal) for row in rows])

    async def batches(
        self, tenant: TenantId, cursor: str, promoted: Sequence[str]
    ) -> AsyncIterator[RowBatch]:
        after: tuple[object, str] | None = None
        while rows := await self._page(tenant, after):
            yield [row_of(evaluation_from_row(row, self._seal), cursor, promoted) for row in rows]
            if len(rows) < BATCH:
                return
            after = (rows[-1]["created_at"], rows[-1]["id"])

    async def current(
        self, tenant: TenantId, changed: Mapping[str, str], promoted: Sequence[str]
    ) -> tuple[RowBatch, set[str]]:
        statement = sa.select(evaluations).where(_live(tenant), evaluations.c.id.in_(list(changed)))
        with translate_errors():
            found = (await self._session.execute(statement)).mappings().all()
        rows = [
            row_of(evaluation_from_row(row, self._seal), changed[row["id"]], promoted)
            for row in found
        ]
        return rows, {row.id for row in rows}

    @staticmethod
    def _timeline_rows(tenant: TenantId, table: Table) -> tuple[sa.Table, sa.Select[Any]]:
        source = evaluation_events if table is Table.EVENTS else log_chunks
        joined = source.join(
            evaluations,
            sa.and_(
                evaluations.c.tenant_id == source.c.tenant_id,
                evaluations.c.id == source.c.evaluation_id,
            ),
        )
        return source, sa.select(source).select_from(joined).where(_live(tenant))

    async def _timeline_page(self, statement: sa.Select[Any]) -> list[sa.RowMapping]:
        with translate_errors():
            return list((await self._session.execute(statement)).mappings().all())

    async def timeline(
        self, tenant: TenantId, table: Table, cursor: str
    ) -> AsyncIterator[RowBatch]:
        source, statement = self._timeline_rows(tenant, table)
        after: int | None = None
        while True:
            page = statement.order_by(source.c.id).limit(BATCH)
            if after is not None:
                page = page.where(source.c.id > after)
            rows = await self._timeline_page(page)
            if not rows:
                return
            yield [_timeline_row(table, row, cursor) for row in rows]
            after = rows[-1]["id"]

    async def timeline_of(
        self, tenant: TenantId, table: Table, changed: Mapping[str, str]
    ) -> RowBatch:
        source, statement = self._timeline_rows(tenant, table)
        wanted = statement.where(source.c.evaluation_id.in_(list(changed))).order_by(source.c.id)
        rows = await self._timeline_page(wanted)
        return [_timeline_row(table, row, changed[row["evaluation_id"]]) for row in rows]


def _timeline_row(table: Table, row: sa.RowMapping, cursor: str) -> WarehouseRow:
    if table is Table.EVENTS:
        return event_row(event_from_row(row), cursor)
    chunk = LogChunk(
        evaluation_id=EvaluationId(row["evaluation_id"]),
        offset=row["start_offset"],
        content=row["content"],
        created_at=row["created_at"],
    )
    return log_row(chunk, cursor)
