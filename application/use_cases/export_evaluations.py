"""Export: each live evaluation whole (full output and error, log, events), for backups."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import msgspec

from application.ports.evaluation_queries import EvaluationQueries
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.queries import EvaluationFilter, EvaluationPage, EvaluationQuery
from application.services.payloads import PayloadStore
from domain.evaluation import Evaluation
from domain.timeline import EvaluationEvent

ARCHIVE_FORMAT = 1


class ArchivedEvaluation(msgspec.Struct, kw_only=True):
    """One line of an export: the record, and beside it everything stored elsewhere.

    ``record.output`` and ``record.error`` are ``None``: where a payload lives is
    the storing backend's business, so the whole texts travel in ``output`` and
    ``error`` and the importing backend routes them by its own thresholds.
    """

    format: int = ARCHIVE_FORMAT
    record: Evaluation
    output: str | None = None
    error: str | None = None
    log: str = ""
    events: list[EvaluationEvent] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class EvaluationExport:
    total: int
    records: AsyncIterator[ArchivedEvaluation]


@dataclass(frozen=True, slots=True)
class ExportEvaluations:
    queries: EvaluationQueries
    payloads: PayloadStore
    logs: LogStore
    events: EventLog

    async def execute(
        self, since: datetime | None = None, batch_size: int = 200
    ) -> EvaluationExport:
        """Live evaluations created at or after ``since``, newest first, read batch by batch."""
        criteria = EvaluationFilter(created_after=since)
        first = await self.queries.list(
            EvaluationQuery(filter=criteria, limit=batch_size, include_total=True)
        )
        return EvaluationExport(total=first.total or 0, records=self._records(criteria, first))

    async def _records(
        self, criteria: EvaluationFilter, page: EvaluationPage
    ) -> AsyncIterator[ArchivedEvaluation]:
        while True:
            for evaluation in page.items:
                yield await self._archive(evaluation)
            if page.next_cursor is None:
                return
            page = await self.queries.list(
                EvaluationQuery(filter=criteria, limit=len(page.items), cursor=page.next_cursor)
            )

    async def _archive(self, evaluation: Evaluation) -> ArchivedEvaluation:
        output = await self.payloads.read_text(evaluation.output)
        error = await self.payloads.read_text(evaluation.error)
        log = await self.logs.read(evaluation.id)
        events = await self.events.list(evaluation.id)
        record = msgspec.structs.replace(evaluation, output=None, error=None)
        return ArchivedEvaluation(
            record=record, output=output, error=error, log=log.content, events=events
        )
