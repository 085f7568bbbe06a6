from abc import abstractmethod
from collections.abc import Iterable
from typing import Protocol


class ReplayMarks(Protocol):
    """Which failover-journal entries the primary already holds (``journal_applied``).

    A mark is written in the transaction of the change it stands for, so an entry
    is either applied and marked or neither: replaying it again is a no-op.
    """

    @abstractmethod
    async def is_applied(self, entry_id: str) -> bool:
        """Whether ``entry_id`` was committed (reads outside the request's pending changes too)."""

    @abstractmethod
    async def mark(self, entry_id: str) -> None:
        """Add ``entry_id`` to the request's transaction; marking twice is not an error."""

    @abstractmethod
    async def forget(self, entry_ids: Iterable[str]) -> None:
        """Drop the marks of entries whose journal segment is gone, and commit."""
