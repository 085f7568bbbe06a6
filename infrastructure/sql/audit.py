"""The audit trail in SQL (SQLAlchemy Core on the request's session)."""

import builtins

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.audit_log import AuditLog, AuditQuery
from domain.audit import AuditAction, AuditEntry
from domain.status import EvaluationStatus
from domain.tenancy import TenantId
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import Row
from infrastructure.sql.tables import audit_log
from infrastructure.sql.tenancy import session_tenant


def entry_values(entry: AuditEntry) -> dict[str, object]:
    return {
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action.value,
        "evaluation_id": entry.evaluation_id,
        "fields": list(entry.fields),
        "sizes": entry.sizes,
        "request_id": entry.request_id,
        "status": entry.status,
        "version": entry.version,
    }


def entry_from_row(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=AuditAction(row["action"]),
        evaluation_id=row["evaluation_id"],
        fields=tuple(row["fields"] or ()),
        sizes=dict(row["sizes"] or {}),
        request_id=row["request_id"],
        status=None if row["status"] is None else EvaluationStatus(row["status"]),
        version=row["version"],
    )


def audit_select(tenant: TenantId, query: AuditQuery) -> sa.Select[tuple[object, ...]]:
    """The one filtered, keyset-paged statement of ``tenant``'s entries; every filter is a
    bound parameter."""
    c = audit_log.c
    conditions: list[sa.ColumnElement[bool]] = [c.tenant_id == tenant]
    if query.evaluation_id is not None:
        conditions.append(c.evaluation_id == query.evaluation_id)
    if query.actor is not None:
        conditions.append(c.actor == query.actor)
    if query.action is not None:
        conditions.append(c.action == query.action.value)
    if query.since is not None:
        conditions.append(c.at >= query.since)
    if query.until is not None:
        conditions.append(c.at < query.until)
    if query.before_id is not None:
        conditions.append(c.id < query.before_id)
    return sa.select(audit_log).where(*conditions).order_by(c.id.desc()).limit(query.limit)


class SqlAuditLog(AuditLog):
    """``AuditLog`` on the ``audit_log`` table, inside the request's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def append(self, entry: AuditEntry) -> None:
        with translate_errors():
            tenant = session_tenant(self._session)
            await self._session.execute(
                sa.insert(audit_log).values(tenant_id=tenant, **entry_values(entry))
            )

    async def list(self, query: AuditQuery) -> builtins.list[AuditEntry]:
        with translate_errors():
            statement = audit_select(session_tenant(self._session), query)
            rows = (await self._session.execute(statement)).mappings().all()
        return [entry_from_row(row) for row in rows]
