from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from application.ports.clock import Clock
from application.ports.evaluation_queries import EvaluationQueries
from application.queries import EvaluationStatistics
from application.use_cases.storage_report import StorageConfiguration
from domain.status import EvaluationStatus

RECENT = timedelta(hours=24)


class StatisticsReport(msgspec.Struct, frozen=True, kw_only=True):
    """The counters' aggregates plus the last 24 hours of creations."""

    totals: EvaluationStatistics
    # Live evaluations created in the last 24 hours.
    last_24h_count: int
    # The start of the UTC clock hour with the most of them (the latest of equals).
    peak_hour: datetime | None
    configuration: StorageConfiguration

    @property
    def success_rate(self) -> float:
        """completed / (completed + failed); 0.0 while neither has happened."""
        completed = self.totals.by_status.get(EvaluationStatus.COMPLETED.value, 0)
        failed = self.totals.by_status.get(EvaluationStatus.FAILED.value, 0)
        finished = completed + failed
        return completed / finished if finished else 0.0


@dataclass(frozen=True, slots=True)
class GetStatistics:
    """Aggregates from the counters (constant time) and the last 24 hours by hour.

    The hours come from one grouped count over the ``created_at`` index's last 24 hours:
    its cost follows the evaluations created in that window, never the whole table.
    """

    queries: EvaluationQueries
    clock: Clock
    configuration: StorageConfiguration

    async def execute(self) -> StatisticsReport:
        totals = await self.queries.statistics()
        hours = await self.queries.hourly_counts(self.clock.now() - RECENT)
        peak = max(hours, key=lambda row: (row.count, row.hour), default=None)
        return StatisticsReport(
            totals=totals,
            last_24h_count=sum(row.count for row in hours),
            peak_hour=None if peak is None else peak.hour,
            configuration=self.configuration,
        )
