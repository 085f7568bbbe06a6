"""Append-only history of an evaluation: events and log chunks."""

from datetime import datetime
from typing import Any

import msgspec

from domain.identifiers import EvaluationId


class EvaluationEvent(msgspec.Struct, kw_only=True, frozen=True):
    """One entry of the timeline. ``event_id`` makes a redelivered append a no-op."""

    evaluation_id: EvaluationId
    event_id: str
    event_type: str
    timestamp: datetime
    message: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class LogChunk(msgspec.Struct, kw_only=True, frozen=True):
    """A piece of log text placed at a byte offset of the evaluation's log."""

    evaluation_id: EvaluationId
    offset: int
    content: str
    created_at: datetime

    @property
    def size(self) -> int:
        return len(self.content.encode("utf-8"))

    @property
    def end(self) -> int:
        return self.offset + self.size


class LogSlice(msgspec.Struct, frozen=True):
    """Log text from ``offset`` to ``next_offset`` (bytes), for incremental tailing."""

    content: str
    offset: int
    next_offset: int
