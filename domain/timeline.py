"""Append-only history of an evaluation: events and log chunks."""

from datetime import datetime
from typing import Any

import msgspec

from domain.errors import InvalidTextError
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


def slice_from(start: int, data: bytes, offset: int) -> LogSlice:
    """The part of ``data`` (which begins at byte ``start`` of the log) from ``offset`` on.

    An offset inside a multi-byte character is refused rather than returning
    broken text; an offset past the end gives empty content at the end.
    """
    size = start + len(data)
    if offset >= size:
        return LogSlice(content="", offset=min(offset, size), next_offset=size)
    relative = offset - start
    if relative < 0:
        raise ValueError(f"offset {offset} is before the slice's start {start}")
    if data[relative] & 0xC0 == 0x80:
        raise InvalidTextError("offset", f"{offset} is not on a UTF-8 character boundary")
    return LogSlice(content=data[relative:].decode("utf-8"), offset=offset, next_offset=size)


def log_with_gaps(data: bytes) -> tuple[str, int | None]:
    """A log copied piece by piece, as text, and the byte of its first gap (``None``: whole).

    A piece that never arrived is a run of NUL bytes (log text never holds NUL); it
    reads back as blanks, so every later piece keeps its byte offset.
    """
    gap = data.find(b"\x00")
    if gap >= 0:
        data = data.replace(b"\x00", b" ")
    return data.decode("utf-8", errors="replace"), (None if gap < 0 else gap)
