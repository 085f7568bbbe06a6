import builtins
from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus


class PurgeSelection(msgspec.Struct, frozen=True, kw_only=True):
    """Which records a cleanup removes for good.

    A record qualifies when its last change (``updated_at``) is before
    ``updated_before`` and it is live in one of ``statuses``, or soft-deleted
    (whatever its status) when ``include_deleted`` is set.
    """

    updated_before: datetime
    statuses: frozenset[EvaluationStatus]
    include_deleted: bool = False

    def matches(self, evaluation: Evaluation) -> bool:
        if evaluation.updated_at >= self.updated_before:
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
    async def recently_updated(self, limit: int) -> builtins.list[Evaluation]:
        """Live records, most recently changed first (``updated_at`` then ``id``, descending)."""
