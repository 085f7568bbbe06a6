"""The audit trail in hand-written SQL on the request's asyncpg connection."""

import builtins
import dataclasses
import functools
from typing import Any

from application.ports.audit_log import AuditLog, AuditQuery
from domain.audit import AuditEntry
from infrastructure.postgres.tenancy import scoped
from infrastructure.postgres.transaction import HeldWrite, PgTransaction
from infrastructure.sql.audit import entry_from_row

# The record's id comes last, so that a held write of the record can supply it instead;
# the tenant ($10) is the transaction's.
INSERT_ENTRY = """
INSERT INTO audit_log
    (at, actor, action, fields, sizes, request_id, status, version, evaluation_id, tenant_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""
# Appended to a held ``INSERT``/``UPDATE`` of the record (``held``), as one statement: the
# entry is written exactly when the record is, in the record's tenant. The casts type what
# a bare SELECT list cannot.
_ENTRY_AFTER = """
INSERT INTO audit_log
    (at, actor, action, fields, sizes, request_id, status, version, evaluation_id, tenant_id)
SELECT ${0}::timestamptz, ${1}::varchar, ${2}::varchar, ${3}::jsonb, ${4}::jsonb, ${5}::varchar,
       ${6}::varchar, ${7}::bigint, held.id, held.tenant_id
FROM held
"""


def _values(entry: AuditEntry) -> tuple[Any, ...]:
    """The entry's columns in ``INSERT_ENTRY`` order, without the record's id."""
    return (
        entry.at,
        entry.actor,
        entry.action.value,
        list(entry.fields),
        entry.sizes,
        entry.request_id,
        entry.status,
        entry.version,
    )


@functools.cache
def _joined_sql(held_sql: str, held_arguments: int) -> str:
    """Built once per held statement (there are two), not per request."""
    after = _ENTRY_AFTER.format(*range(held_arguments + 1, held_arguments + 9))
    return f"WITH held AS ({held_sql} RETURNING id, tenant_id){after}"


def joined(held: HeldWrite, entry: AuditEntry) -> HeldWrite:
    """``held`` (a write of the entry's record) and the entry, as one statement."""
    sql = _joined_sql(held.sql, len(held.arguments))
    arguments = (*held.arguments, *_values(entry))
    return dataclasses.replace(held, sql=sql, arguments=arguments, joinable=None)


# Each filter is a bound parameter that is either NULL (no filter) or the value; $1 the tenant.
SELECT_ENTRIES = scoped(
    """
SELECT id, at, actor, action, evaluation_id, fields, sizes, request_id, status, version
FROM audit_log
WHERE tenant_id = scope.tenant AND ($2::text IS NULL OR evaluation_id = $2)
  AND ($3::text IS NULL OR actor = $3)
  AND ($4::text IS NULL OR action = $4)
  AND ($5::timestamptz IS NULL OR at >= $5)
  AND ($6::timestamptz IS NULL OR at < $6)
  AND ($7::bigint IS NULL OR id < $7)
ORDER BY id DESC LIMIT $8""",
    order="q.id DESC",
)


class PgAuditLog(AuditLog):
    """``AuditLog`` on ``audit_log``; the insert joins the request's transaction."""

    def __init__(self, transaction: PgTransaction) -> None:
        self._transaction = transaction

    async def append(self, entry: AuditEntry) -> None:
        held = self._transaction.held
        if held is not None and held.joinable is not None and held.joinable == entry.evaluation_id:
            self._transaction.rejoin(joined(held, entry))
            return
        arguments = (*_values(entry), entry.evaluation_id, self._transaction.tenant)
        await self._transaction.write(
            lambda connection: connection.execute(INSERT_ENTRY, *arguments)
        )

    async def list(self, query: AuditQuery) -> builtins.list[AuditEntry]:
        arguments = (
            self._transaction.tenant,
            query.evaluation_id,
            query.actor,
            None if query.action is None else query.action.value,
            query.since,
            query.until,
            query.before_id,
            query.limit,
        )
        rows = await self._transaction.read(
            lambda connection: connection.fetch(SELECT_ENTRIES, *arguments)
        )
        return [entry_from_row(row) for row in rows]
