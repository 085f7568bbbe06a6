"""Evaluation keys in the ``evaluation_keys`` table (SQLite, the file backend's index, or
PostgreSQL through SQLAlchemy), each call a short transaction of its own (ADR 0033).

Not the request's session: a key must be committed before anything is sealed under it,
whatever the request's own transaction does afterwards. SQLite zeroes a destroyed key's
page (``secure_delete``, set on every connection), and erasure's ``scrub`` empties the
write-ahead log after it.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from application.ports.evaluation_keys import EvaluationKeys, WrappedKey
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.sql.dialect import insert_for
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.tables import evaluation_keys
from infrastructure.sql.tenancy import bind_tenant

_c = evaluation_keys.c


class SqlEvaluationKeys(EvaluationKeys):
    """``EvaluationKeys`` of one tenant on the ``evaluation_keys`` table."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], tenant: TenantId = DEFAULT_TENANT
    ) -> None:
        self._sessions = sessions
        self._tenant = tenant

    def _session(self) -> AsyncSession:
        """A session of this table's tenant (on PostgreSQL, its transactions set it)."""
        return bind_tenant(self._sessions(), self._tenant)

    def of(self, tenant: TenantId) -> "SqlEvaluationKeys":
        return SqlEvaluationKeys(self._sessions, tenant)

    def _of(self, evaluation_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(_c.tenant_id == self._tenant, _c.evaluation_id == evaluation_id)

    async def fetch(self, evaluation_id: str) -> WrappedKey | None:
        statement = sa.select(_c.kid, _c.wrapped).where(self._of(evaluation_id))
        async with self._session() as session:
            with translate_errors("evaluation key"):
                row = (await session.execute(statement)).first()
        return None if row is None else WrappedKey(row.kid, bytes(row.wrapped))

    async def add(self, evaluation_id: str, key: WrappedKey) -> WrappedKey:
        async with self._session() as session, session.begin():
            with translate_errors("evaluation key"):
                await session.execute(
                    insert_for(session, evaluation_keys)
                    .values(
                        tenant_id=self._tenant,
                        evaluation_id=evaluation_id,
                        kid=key.kid,
                        wrapped=key.wrapped,
                    )
                    .on_conflict_do_nothing(index_elements=[_c.tenant_id, _c.evaluation_id])
                )
                row = (
                    await session.execute(
                        sa.select(_c.kid, _c.wrapped).where(self._of(evaluation_id))
                    )
                ).one()
        return WrappedKey(row.kid, bytes(row.wrapped))

    async def destroy(self, evaluation_ids: Sequence[str]) -> int:
        if not evaluation_ids:
            return 0
        statement = sa.delete(evaluation_keys).where(
            _c.tenant_id == self._tenant, _c.evaluation_id.in_(list(evaluation_ids))
        )
        async with self._session() as session, session.begin():
            with translate_errors("evaluation key"):
                result = await session.execute(statement)
        return _rowcount(result)

    async def page(self, after: str | None, limit: int) -> list[tuple[str, WrappedKey]]:
        statement = (
            sa.select(_c.evaluation_id, _c.kid, _c.wrapped)
            .where(_c.tenant_id == self._tenant)
            .order_by(_c.evaluation_id)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(_c.evaluation_id > after)
        async with self._session() as session:
            with translate_errors("evaluation key"):
                rows = (await session.execute(statement)).all()
        return [(row.evaluation_id, WrappedKey(row.kid, bytes(row.wrapped))) for row in rows]

    async def replace(self, evaluation_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        statement = (
            sa.update(evaluation_keys)
            .where(self._of(evaluation_id), _c.kid == old.kid, _c.wrapped == old.wrapped)
            .values(kid=new.kid, wrapped=new.wrapped)
        )
        async with self._session() as session, session.begin():
            with translate_errors("evaluation key"):
                result = await session.execute(statement)
        return _rowcount(result) == 1

    async def count(self) -> int:
        statement = sa.select(sa.func.count()).where(_c.tenant_id == self._tenant)
        async with self._session() as session:
            with translate_errors("evaluation key"):
                return int(await session.scalar(statement) or 0)


def _rowcount(result: sa.Result[Any]) -> int:
    count: int = getattr(result, "rowcount", 0)
    return count
