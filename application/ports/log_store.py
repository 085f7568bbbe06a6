from abc import abstractmethod
from datetime import datetime
from typing import Protocol

from domain.identifiers import EvaluationId
from domain.timeline import LogChunk, LogSlice


class LogStore(Protocol):
    """Append-only logs: an append costs O(chunk), never a rewrite."""

    @abstractmethod
    async def append(self, evaluation_id: EvaluationId, content: str, now: datetime) -> LogChunk:
        """Place ``content`` at the current end of the log; concurrent appends never collide."""

    @abstractmethod
    async def read(self, evaluation_id: EvaluationId, offset: int = 0) -> LogSlice:
        """The log from byte ``offset`` to its end."""
