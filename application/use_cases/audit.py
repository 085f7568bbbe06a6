from dataclasses import dataclass

from application.ports.audit_log import AuditLog, AuditQuery
from domain.audit import AuditEntry
from domain.evaluation import ensure_storable_text


@dataclass(frozen=True, slots=True)
class ListAuditLog:
    """The audit trail, newest first, one keyset page at a time."""

    log: AuditLog

    async def execute(self, query: AuditQuery) -> list[AuditEntry]:
        for name in ("evaluation_id", "actor"):
            value = getattr(query, name)
            if value is not None:
                ensure_storable_text(name, value)
        return await self.log.list(query)
