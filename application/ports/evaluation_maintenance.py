import builtins
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus


class SubjectTag(msgspec.Struct, frozen=True, kw_only=True):
    """Records whose ``metadata[key]`` is the string ``value``: one data subject's."""

    key: str
    value: str

    def tags(self, metadata: Mapping[str, object]) -> bool:
        found = metadata.get(self.key)
        return isinstance(found, str) and found == self.value


class PurgeSelection(msgspec.Struct, frozen=True, kw_only=True):
    """Which records a cleanup removes for good.

    A record qualifies when its last change (``updated_at``) is before
    ``updated_before`` and it is live in one of ``statuses``, or soft-deleted
    (whatever its status) when ``include_deleted`` is set; with ``subject``, only
    that subject's records qualify.
    """

    updated_before: datetime
    statuses: frozenset[EvaluationStatus]
    include_deleted: bool = False
    subject: SubjectTag | None = None

    @classmethod
    def everything_of(cls, subject: SubjectTag | None) -> "PurgeSelection":
        """Every record of ``subject`` (of any age or status, soft-deleted too); with
        ``None``, every record at all (the caller names the ids)."""
        return cls(
            updated_before=datetime(9999, 1, 1, tzinfo=UTC),
            statuses=frozenset(EvaluationStatus),
            include_deleted=True,
            subject=subject,
        )

    def matches(self, evaluation: Evaluation) -> bool:
        if evaluation.updated_at >= self.updated_before:
            return False
        if self.subject is not None and not self.subject.tags(evaluation.metadata):
            return False
        if evaluation.deleted_at is not None:
            return self.include_deleted
        return evaluation.status in self.statuses


class PurgeCursor(msgspec.Struct, frozen=True, array_like=True):
    """Keyset position in cleanup order: the last candidate's ``updated_at`` and ``id``."""

    updated_at: datetime
    id: EvaluationId


class PurgedRows(msgspec.Struct, frozen=True, kw_only=True):
    """What one ``purge`` removed: the records and the events and log chunks with them."""

    evaluation_ids: list[EvaluationId]
    events: int
    log_chunks: int


class EvaluationMaintenance(Protocol):
    """Whole-store operations for operators: finding and removing records for good."""

    @abstractmethod
    async def purge_candidates(
        self, selection: PurgeSelection, limit: int, after: PurgeCursor | None = None
    ) -> builtins.list[Evaluation]:
        """Records matching ``selection`` (soft-deleted ones included), oldest change first,
        ordered by ``(updated_at, id)`` and strictly after ``after``."""

    @abstractmethod
    async def purge(
        self, evaluation_ids: Sequence[EvaluationId], selection: PurgeSelection
    ) -> PurgedRows:
        """Delete those of ``evaluation_ids`` that still match ``selection``, with their events
        and log chunks, in the caller's transaction (nothing is gone before ``commit``).

        Records changed since they were selected no longer match and are kept.
        """

    @abstractmethod
    async def scrub(self) -> None:
        """After a committed purge: leave no copy of the removed rows in the database's
        own files where the database allows it (SQLite: its search index merged and its
        write-ahead log emptied), on a connection of its own: call it after ``commit``.
        A log a reader still holds is emptied by the next scrub."""

    @abstractmethod
    async def recently_updated(self, limit: int) -> builtins.list[Evaluation]:
        """Live records, most recently changed first (``updated_at`` then ``id``, descending)."""
