"""Exactly-once marks of the failover journal in hand-written SQL on asyncpg."""

from collections.abc import Iterable

from application.ports.replay_marks import ReplayMarks
from infrastructure.postgres.tenancy import scoped
from infrastructure.postgres.transaction import PgTransaction

# $2: the tenant whose entries they are.
INSERT_MARK = (
    "INSERT INTO journal_applied (entry_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
)
SELECT_MARK = scoped(
    "SELECT 1 FROM journal_applied WHERE tenant_id = scope.tenant AND entry_id = $2"
)
DELETE_MARKS = "DELETE FROM journal_applied WHERE entry_id = ANY($1::text[]) AND tenant_id = $2"


class PgReplayMarks(ReplayMarks):
    """``ReplayMarks`` on ``journal_applied``; a mark joins the request's transaction."""

    def __init__(self, transaction: PgTransaction) -> None:
        self._transaction = transaction

    async def is_applied(self, entry_id: str) -> bool:
        found = await self._transaction.read(
            lambda connection: connection.fetchval(SELECT_MARK, self._transaction.tenant, entry_id)
        )
        return found is not None

    async def mark(self, entry_id: str) -> None:
        tenant = self._transaction.tenant
        await self._transaction.write(
            lambda connection: connection.execute(INSERT_MARK, entry_id, tenant)
        )

    async def forget(self, entry_ids: Iterable[str]) -> None:
        ids = list(entry_ids)
        if ids:
            tenant = self._transaction.tenant
            await self._transaction.write(
                lambda connection: connection.execute(DELETE_MARKS, ids, tenant)
            )
        await self._transaction.commit()
