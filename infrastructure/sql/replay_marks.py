"""Exactly-once marks of the failover journal in SQL (SQLAlchemy Core on the request's session)."""

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.replay_marks import ReplayMarks
from infrastructure.sql.dialect import insert_for
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.tables import journal_applied
from infrastructure.sql.tenancy import session_tenant

# Ids per DELETE: ``IN`` binds one parameter each, and SQLite caps the parameters
# of a statement (999 before 3.32).
FORGET_BATCH = 500


class SqlReplayMarks(ReplayMarks):
    """``ReplayMarks`` on the ``journal_applied`` table, inside the request's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def is_applied(self, entry_id: str) -> bool:
        statement = sa.select(sa.literal(1)).where(
            journal_applied.c.tenant_id == session_tenant(self._session),
            journal_applied.c.entry_id == entry_id,
        )
        with translate_errors():
            found = await self._session.scalar(statement)
        return found is not None

    async def mark(self, entry_id: str) -> None:
        # ON CONFLICT DO NOTHING: marking twice neither fails nor aborts the transaction.
        statement = (
            insert_for(self._session, journal_applied)
            .values(entry_id=entry_id, tenant_id=session_tenant(self._session))
            .on_conflict_do_nothing(index_elements=[journal_applied.c.entry_id])
        )
        with translate_errors():
            await self._session.execute(statement)

    async def forget(self, entry_ids: Iterable[str]) -> None:
        ids = list(entry_ids)
        with translate_errors():
            for start in range(0, len(ids), FORGET_BATCH):
                batch = ids[start : start + FORGET_BATCH]
                await self._session.execute(
                    sa.delete(journal_applied).where(
                        journal_applied.c.tenant_id == session_tenant(self._session),
                        journal_applied.c.entry_id.in_(batch),
                    )
                )
        with translate_errors("commit"):
            await self._session.commit()
