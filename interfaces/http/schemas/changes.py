"""The change feed's bodies: a page of changes, and what a stream sends."""

from datetime import datetime

import msgspec

from domain.changes import Change, ChangeKind
from domain.status import EvaluationStatus
from domain.timeline import LogSlice


class ChangeBody(msgspec.Struct, kw_only=True):
    """One committed write; ``cursor`` resumes the feed right after it."""

    cursor: str
    kind: ChangeKind
    evaluation_id: str
    at: datetime
    status: EvaluationStatus | None = None
    version: int | None = None
    fields: list[str] = msgspec.field(default_factory=list)
    sizes: dict[str, int] = msgspec.field(default_factory=dict)

    @classmethod
    def of(cls, change: Change) -> "ChangeBody":
        return cls(
            cursor=change.cursor.token(),
            kind=change.kind,
            evaluation_id=change.evaluation_id,
            at=change.at,
            status=change.status,
            version=change.version,
            fields=list(change.fields),
            sizes=change.sizes,
        )


class ChangePageBody(msgspec.Struct, kw_only=True):
    """A page of the feed. Send ``next_cursor`` back as ``after``; with ``more`` false the
    page reached the end of the feed for now (poll again later, or use the stream)."""

    items: list[ChangeBody]
    next_cursor: str | None
    more: bool


class LogPieceBody(msgspec.Struct, kw_only=True):
    """What a log stream's message carries: the log from ``offset`` to ``next_offset``."""

    offset: int
    next_offset: int
    content: str

    @classmethod
    def of(cls, piece: LogSlice) -> "LogPieceBody":
        return cls(offset=piece.offset, next_offset=piece.next_offset, content=piece.content)


class LogEndBody(msgspec.Struct, kw_only=True):
    """The last message of a log stream: the evaluation's final status (``None`` and
    ``deleted`` when it was deleted while followed)."""

    status: EvaluationStatus | None
    deleted: bool = False
