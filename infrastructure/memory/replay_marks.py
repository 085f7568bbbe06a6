"""Exactly-once marks of the failover journal in process memory."""

from collections.abc import Iterable

from application.ports.replay_marks import ReplayMarks
from infrastructure.memory.tenants import PerTenant


class MemoryReplayMarks(ReplayMarks, PerTenant):
    """``ReplayMarks`` as a set; like the other memory adapters it applies at once.

    The memory backend has no transaction (``MemoryUnitOfWork`` cannot undo), so a
    mark is visible as soon as it is made, just like the change it stands for, and
    a rollback keeps both: an entry is still either applied and marked or neither.
    """

    def __init__(self) -> None:
        self.applied: set[str] = set()

    async def is_applied(self, entry_id: str) -> bool:
        return entry_id in self.applied

    async def mark(self, entry_id: str) -> None:
        self.applied.add(entry_id)

    async def forget(self, entry_ids: Iterable[str]) -> None:
        self.applied.difference_update(entry_ids)
