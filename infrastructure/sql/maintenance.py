"""``EvaluationMaintenance`` on SQLAlchemy Core: the SQLite configuration (and PostgreSQL)."""

import builtins
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.evaluation_maintenance import (
    EvaluationMaintenance,
    PurgeCursor,
    PurgedRows,
    PurgeSelection,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.sql.dialect import dialect_name
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import evaluation_from_row
from infrastructure.sql.tables import evaluation_events, evaluations, log_chunks


def selection_condition(selection: PurgeSelection) -> sa.ColumnElement[bool]:
    """``WHERE`` of ``PurgeSelection.matches``."""
    live = sa.and_(
        evaluations.c.deleted_at.is_(None),
        evaluations.c.status.in_(sorted(status.value for status in selection.statuses)),
    )
    kept = live
    if selection.include_deleted:
        kept = sa.or_(live, evaluations.c.deleted_at.is_not(None))
    return sa.and_(evaluations.c.updated_at < selection.updated_before, kept)


class SqlEvaluationMaintenance(EvaluationMaintenance):
    """Runs on the request's session; ``purge`` writes in its transaction, never commits."""

    def __init__(self, session: AsyncSession, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._session = session

    async def purge_candidates(
        self, selection: PurgeSelection, limit: int, after: PurgeCursor | None = None
    ) -> builtins.list[Evaluation]:
        statement = sa.select(evaluations).where(selection_condition(selection))
        if after is not None:
            statement = statement.where(
                sa.tuple_(evaluations.c.updated_at, evaluations.c.id)
                > sa.tuple_(
                    sa.literal(after.updated_at, evaluations.c.updated_at.type),
                    sa.literal(after.id, evaluations.c.id.type),
                )
            )
        statement = statement.order_by(evaluations.c.updated_at, evaluations.c.id).limit(
            max(limit, 0)
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
        return [evaluation_from_row(row, self._seal) for row in rows]

    async def purge(
        self, evaluation_ids: Sequence[EvaluationId], selection: PurgeSelection
    ) -> PurgedRows:
        ids = list(dict.fromkeys(evaluation_ids))
        if not ids:
            return PurgedRows(evaluation_ids=[], events=0, log_chunks=0)
        doomed = sa.select(evaluations.c.id).where(
            evaluations.c.id.in_(ids), selection_condition(selection)
        )
        with translate_errors():
            if dialect_name(self._session) == "postgresql":
                # Lock the rows first: a change committed meanwhile waits, then no longer matches.
                await self._session.execute(doomed.with_for_update())
            events = await self._delete(
                sa.delete(evaluation_events).where(evaluation_events.c.evaluation_id.in_(doomed))
            )
            chunks = await self._delete(
                sa.delete(log_chunks).where(log_chunks.c.evaluation_id.in_(doomed))
            )
            gone = await self._session.execute(
                sa.delete(evaluations)
                .where(evaluations.c.id.in_(ids), selection_condition(selection))
                .returning(evaluations.c.id)
            )
            purged = [EvaluationId(row[0]) for row in gone.all()]
        return PurgedRows(evaluation_ids=sorted(purged), events=events, log_chunks=chunks)

    async def _delete(self, statement: sa.Delete) -> int:
        result: Any = await self._session.execute(statement)
        return int(result.rowcount or 0)

    async def recently_updated(self, limit: int) -> builtins.list[Evaluation]:
        statement = (
            sa.select(evaluations)
            .where(evaluations.c.deleted_at.is_(None))
            .order_by(evaluations.c.updated_at.desc(), evaluations.c.id.desc())
            .limit(max(limit, 0))
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
        return [evaluation_from_row(row, self._seal) for row in rows]
