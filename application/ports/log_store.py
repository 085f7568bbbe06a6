from abc import abstractmethod
from datetime import datetime
from typing import Protocol

import msgspec

from domain.identifiers import EvaluationId
from domain.timeline import LogChunk, LogSlice


class AppendedLog(msgspec.Struct, frozen=True, kw_only=True):
    """A chunk placed in the log, and the record's ``version`` after the append.

    An append changes the record (its ``last_update``), so the record's version
    moves on like on any other committed change: caches and ``If-Match`` see it.
    """

    chunk: LogChunk
    version: int


class LogStore(Protocol):
    """Append-only logs: an append costs O(chunk), never a rewrite."""

    @abstractmethod
    async def append(
        self, evaluation_id: EvaluationId, content: str, now: datetime, *, last_update: datetime
    ) -> AppendedLog:
        """Place ``content`` at the current end of the log; concurrent appends never collide.

        The chunk is stamped ``now``. In the same statement that places it, the record's
        ``last_update`` becomes ``last_update`` and its version grows by one; its
        ``updated_at`` stays (retention and activity count record writes, not log lines).
        """

    @abstractmethod
    async def read(self, evaluation_id: EvaluationId, offset: int = 0) -> LogSlice:
        """The log from byte ``offset`` to its end."""
