"""The change feed in hand-written SQL on the request's asyncpg connection.

A transaction's entries carry its id (``txid``). Only the entries of transactions
older than the oldest one still running (``pg_snapshot_xmin``) are read: every
transaction with a smaller id has ended, so no entry can appear later in front of a
cursor already handed out, whatever order the transactions commit in.
"""

from datetime import datetime

from application.ports.change_feed import ChangeFeed, ChangePage, ChangeQuery
from domain.changes import START, ChangeCursor, actions_of
from infrastructure.postgres.tenancy import scoped
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.sql.changes import page_of

# Each filter is a bound parameter that is either NULL (no filter) or the value; $1 the tenant.
SELECT_CHANGES = scoped(
    """
SELECT id, txid, at, actor, action, evaluation_id, fields, sizes, request_id, status, version
FROM audit_log
WHERE tenant_id = scope.tenant AND (txid, id) > ($2, $3) AND evaluation_id IS NOT NULL
  AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
  AND ($4::text IS NULL OR evaluation_id = $4)
  AND ($5::text[] IS NULL OR action = ANY($5))
  AND ($7::timestamptz IS NULL OR at >= $7)
ORDER BY txid, id LIMIT $6""",
    order="q.txid, q.id",
)
SELECT_AT = scoped(
    "SELECT at FROM audit_log WHERE tenant_id = scope.tenant AND id = $2 AND txid = $3"
)
SELECT_LATEST = scoped(
    """
SELECT txid, id FROM audit_log
WHERE tenant_id = scope.tenant AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY txid DESC, id DESC LIMIT 1"""
)


class PgChangeFeed(ChangeFeed):
    """``ChangeFeed`` on ``audit_log`` by its ``(txid, id)`` index."""

    def __init__(self, transaction: PgTransaction) -> None:
        self._transaction = transaction

    async def read(self, query: ChangeQuery) -> ChangePage:
        after = query.after or START
        actions = sorted(a.value for a in actions_of(query.kinds)) if query.kinds else None
        arguments = (
            self._transaction.tenant,
            after.transaction,
            after.sequence,
            query.evaluation_id,
            actions,
            query.limit,
            query.since,
        )
        rows = await self._transaction.read(
            lambda connection: connection.fetch(SELECT_CHANGES, *arguments)
        )
        return page_of(rows, query)

    async def recorded_at(self, cursor: ChangeCursor) -> datetime | None:
        at: datetime | None = await self._transaction.read(
            lambda connection: connection.fetchval(
                SELECT_AT, self._transaction.tenant, cursor.sequence, cursor.transaction
            )
        )
        return at

    async def latest(self) -> ChangeCursor | None:
        row = await self._transaction.read(
            lambda connection: connection.fetchrow(SELECT_LATEST, self._transaction.tenant)
        )
        return None if row is None else ChangeCursor(row["txid"], row["id"])
