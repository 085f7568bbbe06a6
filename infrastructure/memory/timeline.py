"""Events and logs in process memory, with the SQL adapters' semantics."""

import builtins
from datetime import datetime

from application.errors import EvaluationNotFoundError, InvalidRequestError
from application.ports.event_log import EventLog
from application.ports.log_store import AppendedLog, LogStore
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from domain.timeline import EvaluationEvent, LogChunk, LogSlice, slice_from
from infrastructure.memory.evaluations import MemoryDatabase


class MemoryEventLog(EventLog):
    """``EventLog`` over a ``MemoryDatabase``; unknown or deleted evaluations raise not found."""

    def __init__(self, database: MemoryDatabase, tenant: TenantId) -> None:
        self._db = database.of(tenant)

    async def append(self, event: EvaluationEvent) -> bool:
        async with self._db.lock:
            if self._db.live(event.evaluation_id) is None:
                raise EvaluationNotFoundError(event.evaluation_id)
            timeline = self._db.events.setdefault(event.evaluation_id, [])
            if any(stored.event_id == event.event_id for stored in timeline):
                return False
            timeline.append(event)
            return True

    async def list(self, evaluation_id: EvaluationId) -> builtins.list[EvaluationEvent]:
        # sorted() is stable, so equal timestamps keep append order (like ORDER BY timestamp, id).
        return sorted(self._db.events.get(evaluation_id, []), key=lambda e: e.timestamp)


class MemoryLogStore(LogStore):
    """``LogStore`` over a ``MemoryDatabase``: the lock makes offset reservation atomic.

    Like the SQL statement, an append sets the record's ``last_update`` and moves its
    version on.
    """

    def __init__(self, database: MemoryDatabase, tenant: TenantId) -> None:
        self._db = database.of(tenant)

    async def append(
        self, evaluation_id: EvaluationId, content: str, now: datetime, *, last_update: datetime
    ) -> AppendedLog:
        async with self._db.lock:
            record = self._db.live(evaluation_id)
            if record is None:
                raise EvaluationNotFoundError(evaluation_id)
            record.last_update = last_update
            record.version += 1
            offset = self._db.log_sizes.get(evaluation_id, 0)
            chunk = LogChunk(
                evaluation_id=evaluation_id, offset=offset, content=content, created_at=now
            )
            if content:
                self._db.log_chunks.setdefault(evaluation_id, []).append(chunk)
            self._db.log_sizes[evaluation_id] = chunk.end
            return AppendedLog(chunk=chunk, version=record.version)

    async def read(self, evaluation_id: EvaluationId, offset: int = 0) -> LogSlice:
        if offset < 0:
            raise InvalidRequestError("offset", "must be zero or positive")
        chunks = [c for c in self._db.log_chunks.get(evaluation_id, []) if c.end > offset]
        size = self._db.log_sizes.get(evaluation_id, 0)
        if not chunks:
            return LogSlice(content="", offset=min(offset, size), next_offset=size)
        data = "".join(c.content for c in chunks).encode("utf-8")
        return slice_from(chunks[0].offset, data, offset)
