"""Evaluations by status per day: the data behind the explorer's activity chart."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import msgspec

from application.ports.clock import Clock
from application.ports.evaluation_queries import EvaluationQueries
from domain.status import EvaluationStatus

MAX_DAYS = 366


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """One count per day (oldest first, no gaps) for each status; days with none count 0."""

    days: list[date]
    counts: dict[str, list[int]]

    @property
    def total(self) -> int:
        return sum(sum(series) for series in self.counts.values())


@dataclass(frozen=True, slots=True)
class GetActivity:
    queries: EvaluationQueries
    clock: Clock

    async def execute(self, days: int = 14) -> Activity:
        """The last ``days`` UTC days, today included, for every status in lifecycle order."""
        days = min(max(days, 1), MAX_DAYS)
        today = self.clock.now().astimezone(UTC).date()
        first = today - timedelta(days=days - 1)
        axis = [first + timedelta(days=index) for index in range(days)]
        position = {day: index for index, day in enumerate(axis)}
        counts = {status.value: [0] * days for status in EvaluationStatus}
        since = datetime.combine(first, time.min, tzinfo=UTC)
        for row in await self.queries.daily_status_counts(since):
            index = position.get(row.day)
            if index is not None:
                counts.setdefault(row.status, [0] * days)[index] += row.count
        return Activity(days=axis, counts=counts)
