import builtins
from abc import abstractmethod
from datetime import datetime
from typing import Protocol

from application.ports.evaluation_pages import EvaluationPages
from application.queries import (
    DayStatusCount,
    EvaluationStatistics,
    HourCount,
    RecordTally,
)
from domain.evaluation import Evaluation


class EvaluationQueries(EvaluationPages, Protocol):
    """Read-side queries over many records, computed by the store itself.

    Its pages are ``EvaluationPages``'; ``GET /evaluations`` asks that port alone, which
    PostgreSQL serves without SQLAlchemy.
    """

    @abstractmethod
    async def list_active(self) -> builtins.list[Evaluation]:
        """Live records in ``provisioning`` or ``running``."""

    @abstractmethod
    async def statistics(self) -> EvaluationStatistics:
        """Aggregates over live records."""

    @abstractmethod
    async def daily_status_counts(self, since: datetime) -> builtins.list[DayStatusCount]:
        """Live records created at or after ``since``, counted by UTC day and current status.

        Only non-zero counts, ordered by day then status.
        """

    @abstractmethod
    async def hourly_counts(self, since: datetime) -> builtins.list[HourCount]:
        """Live records created at or after ``since``, counted by UTC clock hour.

        Only non-zero counts, oldest hour first. Reads only the records created since
        ``since`` (through the index on ``created_at``), never the whole table.
        """

    @abstractmethod
    async def blob_keys(self) -> set[str]:
        """Every blob key a record points at, soft-deleted records included."""

    @abstractmethod
    async def tallies(self) -> dict[str, RecordTally]:
        """Every record's version, event count and log bytes, soft-deleted ones included
        (what the file backend's copies are checked against)."""
