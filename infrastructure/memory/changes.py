"""The change feed over the memory audit trail, whose order is its append order."""

import builtins
from datetime import datetime

from application.ports.change_feed import ChangeFeed, ChangePage, ChangeQuery
from domain.audit import AuditEntry
from domain.changes import ChangeCursor, actions_of, change_of
from infrastructure.memory.audit import MemoryAuditLog


def _cursor(sequence: int) -> ChangeCursor:
    return ChangeCursor(0, sequence)


class MemoryChangeFeed(ChangeFeed):
    """``ChangeFeed`` reading ``MemoryAuditLog.entries`` (entry ``n`` has id ``n``)."""

    def __init__(self, log: MemoryAuditLog) -> None:
        self._log = log

    async def read(self, query: ChangeQuery) -> ChangePage:
        start = 0 if query.after is None else query.after.sequence
        if query.after is not None and query.after.transaction > 0:
            start = len(self._log.entries)
        actions = actions_of(query.kinds) if query.kinds else None
        read: builtins.list[AuditEntry] = []
        for entry in self._log.entries[max(start, 0) :]:
            if len(read) == query.limit:
                break
            if entry.evaluation_id is None or (
                query.evaluation_id is not None and entry.evaluation_id != query.evaluation_id
            ):
                continue
            if query.since is not None and entry.at < query.since:
                continue
            if actions is None or entry.action in actions:
                read.append(entry)
        changes = [
            change
            for entry in read
            if (change := change_of(entry, _cursor(entry.id or 0))) is not None
            and (not query.kinds or change.kind in query.kinds)
        ]
        reached = _cursor(read[-1].id or 0) if read else None
        return ChangePage(changes=changes, reached=reached, full=len(read) == query.limit)

    async def recorded_at(self, cursor: ChangeCursor) -> datetime | None:
        entries = self._log.entries
        if cursor.transaction != 0 or not 1 <= cursor.sequence <= len(entries):
            return None
        return entries[cursor.sequence - 1].at

    async def latest(self) -> ChangeCursor | None:
        return _cursor(len(self._log.entries)) if self._log.entries else None
