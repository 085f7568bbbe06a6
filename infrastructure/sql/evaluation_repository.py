"""``EvaluationRepository`` in SQL: Core statements on the request's ``AsyncSession``.

Nothing here commits: the use case does, through the unit of work.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.errors import (
    DuplicateEvaluationError,
    EvaluationNotFoundError,
    VersionConflictError,
)
from application.ports.evaluation_repository import EvaluationRepository
from application.queries import Projection
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.sql.dialect import insert_for
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import (
    evaluation_from_row,
    evaluation_values,
    projection_columns,
    projection_from_row,
)
from infrastructure.sql.tables import evaluations, live_evaluations
from infrastructure.sql.tenancy import session_tenant


class SqlEvaluationRepository(EvaluationRepository):
    """``EvaluationRepository`` on the ``evaluations`` table with optimistic versioning."""

    def __init__(self, session: AsyncSession, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._session = session

    def _is(self, evaluation_id: EvaluationId) -> sa.ColumnElement[bool]:
        """The record ``evaluation_id`` of the session's tenant."""
        return sa.and_(
            evaluations.c.tenant_id == session_tenant(self._session),
            evaluations.c.id == evaluation_id,
        )

    async def add(self, evaluation: Evaluation) -> None:
        # ON CONFLICT DO NOTHING reports the duplicate without aborting the transaction.
        statement = (
            insert_for(self._session, evaluations)
            .values(
                tenant_id=session_tenant(self._session), **evaluation_values(evaluation, self._seal)
            )
            .on_conflict_do_nothing(index_elements=[evaluations.c.tenant_id, evaluations.c.id])
        )
        with translate_errors():
            result = await self._session.execute(statement)
        if _rowcount(result) != 1:
            raise DuplicateEvaluationError(evaluation.id)

    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        statement = sa.select(evaluations).where(self._is(evaluation_id), live_evaluations)
        with translate_errors():
            row = (await self._session.execute(statement)).mappings().first()
        return None if row is None else evaluation_from_row(row, self._seal)

    async def get_any(self, evaluation_id: EvaluationId) -> Evaluation | None:
        statement = sa.select(evaluations).where(self._is(evaluation_id))
        with translate_errors():
            row = (await self._session.execute(statement)).mappings().first()
        return None if row is None else evaluation_from_row(row, self._seal)

    async def get_fields(
        self, evaluation_id: EvaluationId, fields: frozenset[str]
    ) -> Projection | None:
        columns = [evaluations.c[name] for name in projection_columns(fields)]
        statement = sa.select(*columns).where(self._is(evaluation_id), live_evaluations)
        with translate_errors():
            row = (await self._session.execute(statement)).mappings().first()
        return None if row is None else projection_from_row(row, fields, self._seal)

    async def update(self, evaluation: Evaluation, expected_version: int) -> None:
        values = evaluation_values(evaluation, self._seal)
        del values["id"]
        statement = (
            sa.update(evaluations)
            .where(self._is(evaluation.id), evaluations.c.version == expected_version)
            .values(values)
        )
        with translate_errors():
            result = await self._session.execute(statement)
            if _rowcount(result) == 1:
                return
            actual = await self._session.scalar(
                sa.select(evaluations.c.version).where(self._is(evaluation.id))
            )
        if actual is None:
            raise EvaluationNotFoundError(evaluation.id)
        raise VersionConflictError(evaluation.id, expected_version, actual)


def _rowcount(result: sa.Result[Any]) -> int:
    count: int = getattr(result, "rowcount", 0)
    return count
