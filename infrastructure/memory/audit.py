"""The audit trail in process memory (``STORAGE_BACKEND=memory`` and use-case tests)."""

import builtins

import msgspec

from application.ports.audit_log import AuditLog, AuditQuery
from domain.audit import AuditEntry
from infrastructure.memory.tenants import PerTenant


class MemoryAuditLog(AuditLog, PerTenant):
    """``AuditLog`` as a list; like the other memory adapters it applies at once.

    Its own entries are the default tenant's; each other tenant has a log of its own (``of``).
    """

    def __init__(self) -> None:
        self.entries: builtins.list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> None:
        self.entries.append(msgspec.structs.replace(entry, id=len(self.entries) + 1))

    async def list(self, query: AuditQuery) -> builtins.list[AuditEntry]:
        found: builtins.list[AuditEntry] = []
        for entry in reversed(self.entries):
            if len(found) == query.limit:
                break
            if _matches(entry, query):
                found.append(entry)
        return found


def _matches(entry: AuditEntry, query: AuditQuery) -> bool:
    assert entry.id is not None
    return (
        (query.evaluation_id is None or entry.evaluation_id == query.evaluation_id)
        and (query.actor is None or entry.actor == query.actor)
        and (query.action is None or entry.action is query.action)
        and (query.since is None or entry.at >= query.since)
        and (query.until is None or entry.at < query.until)
        and (query.before_id is None or entry.id < query.before_id)
    )
