"""Evaluation records in process memory, shared through one ``MemoryDatabase``."""

import asyncio
import builtins
import copy
import heapq
from collections import Counter
from datetime import datetime

from application.backends import Backend
from application.errors import (
    DuplicateEvaluationError,
    EvaluationNotFoundError,
    VersionConflictError,
)
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.evaluation_repository import EvaluationRepository
from application.queries import (
    PERCENTILES,
    BackendReport,
    DayStatusCount,
    EvaluationFilter,
    EvaluationPage,
    EvaluationQuery,
    EvaluationStatistics,
    HourCount,
    ListCursor,
    MetricValue,
    ProjectedPage,
    Projection,
    RecordTally,
    RuntimeStatistics,
    nearest_rank,
    project,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from domain.timeline import EvaluationEvent, LogChunk
from domain.timestamps import as_utc
from infrastructure.memory.inspector import MemoryInspector
from infrastructure.memory.search import matches
from infrastructure.memory.tenants import PerTenant


class MemoryDatabase(PerTenant):
    """The state every memory adapter shares, like tables of one database.

    Records are stored as deep copies so a caller mutating its entity never
    changes what is stored without ``update``. ``lock`` serialises the
    read-modify-write steps (version checks, log offsets).

    Its own tables are the default tenant's; each other tenant has a database of its own
    (``of``), so an adapter made for one tenant cannot reach another's rows (ADR 0032).
    """

    def __init__(self) -> None:
        self.evaluations: dict[EvaluationId, Evaluation] = {}
        self.events: dict[EvaluationId, list[EvaluationEvent]] = {}
        self.log_chunks: dict[EvaluationId, list[LogChunk]] = {}
        self.log_sizes: dict[EvaluationId, int] = {}
        self.lock = asyncio.Lock()

    def live(self, evaluation_id: EvaluationId) -> Evaluation | None:
        evaluation = self.evaluations.get(evaluation_id)
        if evaluation is None or evaluation.deleted_at is not None:
            return None
        return evaluation

    def live_records(self) -> builtins.list[Evaluation]:
        return [e for e in self.evaluations.values() if e.deleted_at is None]


def _matches(evaluation: Evaluation, criteria: EvaluationFilter) -> bool:
    return (
        (criteria.status is None or evaluation.status == criteria.status)
        and (criteria.language is None or evaluation.language == criteria.language)
        and (criteria.created_after is None or evaluation.created_at >= criteria.created_after)
        and (criteria.created_before is None or evaluation.created_at < criteria.created_before)
        and (not criteria.id_prefix or evaluation.id.startswith(criteria.id_prefix))
    )


def _position(evaluation: Evaluation) -> tuple[datetime, str]:
    """Where a record stands in a list (newest first): its keyset."""
    return evaluation.created_at, evaluation.id


def _newest_first(records: builtins.list[Evaluation]) -> builtins.list[Evaluation]:
    return sorted(records, key=_position, reverse=True)


class MemoryEvaluationRepository(EvaluationRepository):
    """``EvaluationRepository`` over ``tenant``'s tables of a ``MemoryDatabase``."""

    def __init__(self, database: MemoryDatabase, tenant: TenantId) -> None:
        self._db = database.of(tenant)

    async def add(self, evaluation: Evaluation) -> None:
        async with self._db.lock:
            if evaluation.id in self._db.evaluations:
                raise DuplicateEvaluationError(evaluation.id)
            self._db.evaluations[evaluation.id] = copy.deepcopy(evaluation)

    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        evaluation = self._db.live(evaluation_id)
        return None if evaluation is None else copy.deepcopy(evaluation)

    async def get_any(self, evaluation_id: EvaluationId) -> Evaluation | None:
        evaluation = self._db.evaluations.get(evaluation_id)
        return None if evaluation is None else copy.deepcopy(evaluation)

    async def get_fields(
        self, evaluation_id: EvaluationId, fields: frozenset[str]
    ) -> Projection | None:
        evaluation = self._db.live(evaluation_id)
        return None if evaluation is None else project(copy.deepcopy(evaluation), fields)

    async def update(self, evaluation: Evaluation, expected_version: int) -> None:
        async with self._db.lock:
            stored = self._db.evaluations.get(evaluation.id)
            if stored is None:
                raise EvaluationNotFoundError(evaluation.id)
            if stored.version != expected_version:
                raise VersionConflictError(evaluation.id, expected_version, stored.version)
            self._db.evaluations[evaluation.id] = copy.deepcopy(evaluation)


class MemoryEvaluationQueries(EvaluationQueries):
    """``EvaluationQueries`` over ``tenant``'s tables of a ``MemoryDatabase``: same filters,
    order and paging as SQL."""

    def __init__(self, database: MemoryDatabase, tenant: TenantId) -> None:
        self._db = database.of(tenant)

    async def blob_keys(self) -> set[str]:
        return {
            payload.key
            for evaluation in self._db.evaluations.values()
            for payload in (evaluation.output, evaluation.error)
            if payload is not None and payload.key is not None
        }

    async def tallies(self) -> dict[str, RecordTally]:
        return {
            str(key): RecordTally(
                version=evaluation.version,
                events=len(self._db.events.get(key, [])),
                log_bytes=self._db.log_sizes.get(key, 0),
            )
            for key, evaluation in self._db.evaluations.items()
        }

    async def list(self, query: EvaluationQuery) -> EvaluationPage:
        matching = [e for e in self._db.live_records() if _matches(e, query.filter)]
        search = query.filter.search
        if search is not None:
            matching = [e for e in matching if matches(self._db, e, search)]
        limit = max(query.limit, 0)
        if query.cursor is not None:
            position = (query.cursor.created_at, query.cursor.id)
            candidates = [e for e in matching if (e.created_at, e.id) < position]
            skipped = 0
        else:
            candidates = matching
            skipped = max(query.offset, 0)
        # Only the page and one more are ordered, not every match (as an index walk would).
        wanted = heapq.nlargest(skipped + limit + 1, candidates, key=_position)[skipped:]
        items = [copy.deepcopy(e) for e in wanted[:limit]]
        next_cursor = None
        if len(wanted) > limit and items:
            next_cursor = ListCursor(created_at=items[-1].created_at, id=items[-1].id)
        return EvaluationPage(items=items, next_cursor=next_cursor, total=len(matching))

    async def list_fields(self, query: EvaluationQuery, fields: frozenset[str]) -> ProjectedPage:
        page = await self.list(query)
        return ProjectedPage(
            items=[project(item, fields) for item in page.items],
            next_cursor=page.next_cursor,
            total=page.total,
        )

    async def daily_status_counts(self, since: datetime) -> builtins.list[DayStatusCount]:
        counts = Counter(
            (as_utc(e.created_at).date(), e.status.value)
            for e in self._db.live_records()
            if e.created_at >= since
        )
        return [
            DayStatusCount(day=day, status=status, count=count)
            for (day, status), count in sorted(counts.items())
        ]

    async def hourly_counts(self, since: datetime) -> builtins.list[HourCount]:
        counts = Counter(
            as_utc(e.created_at).replace(minute=0, second=0, microsecond=0)
            for e in self._db.live_records()
            if e.created_at >= since
        )
        return [HourCount(hour=hour, count=count) for hour, count in sorted(counts.items())]

    async def list_active(self) -> builtins.list[Evaluation]:
        active = [e for e in self._db.live_records() if e.status.is_active]
        return [copy.deepcopy(e) for e in _newest_first(active)]

    async def statistics(self) -> EvaluationStatistics:
        live = self._db.live_records()
        by_status: dict[str, int] = {}
        by_language: dict[str, int] = {}
        bytes_by_location: dict[str, int] = {}
        payloads_by_location: dict[str, int] = {}
        for evaluation in live:
            status = evaluation.status.value
            by_status[status] = by_status.get(status, 0) + 1
            by_language[evaluation.language] = by_language.get(evaluation.language, 0) + 1
            for payload in (evaluation.output, evaluation.error):
                if payload is not None:
                    location = payload.location.value
                    bytes_by_location[location] = bytes_by_location.get(location, 0) + payload.size
                    payloads_by_location[location] = payloads_by_location.get(location, 0) + 1
        runtimes = sorted(e.runtime_ms for e in live if e.runtime_ms is not None)
        percentiles: dict[int, int | None] = {
            p: runtimes[nearest_rank(p, len(runtimes))] if runtimes else None for p in PERCENTILES
        }
        live_ids = {e.id for e in live}
        return EvaluationStatistics(
            total=len(live),
            by_status=by_status,
            by_language=by_language,
            runtime=RuntimeStatistics(
                count=len(runtimes),
                average_ms=sum(runtimes) / len(runtimes) if runtimes else None,
                p50_ms=percentiles[50],
                p95_ms=percentiles[95],
                p99_ms=percentiles[99],
                max_ms=runtimes[-1] if runtimes else None,
            ),
            bytes_by_location=bytes_by_location,
            events=sum(len(self._db.events.get(i, [])) for i in live_ids),
            log_bytes=sum(self._db.log_sizes.get(i, 0) for i in live_ids),
            payloads_by_location=payloads_by_location,
        )


class MemoryDatabaseInspector(MemoryInspector):
    """``BackendInspector`` named ``database`` for the memory backend: always healthy."""

    name: str = Backend.DATABASE

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        db = self._db
        records = db.live_records()
        oldest = min((e.created_at for e in records), default=None)
        details: dict[str, MetricValue] = {}
        listings: dict[str, builtins.list[str]] = {}
        if detailed:
            details = {"log_bytes": sum(db.log_sizes.values()), "durable": "no"}
            # No tables here: the fields each kept record has.
            listings = {
                "evaluations_columns": builtins.list(Evaluation.__struct_fields__),
                "evaluation_events_columns": builtins.list(EvaluationEvent.__struct_fields__),
            }
        return self.healthy(
            metrics={
                "evaluations": len(records),
                "deleted": len(db.evaluations) - len(records),
                # Of live records, as the SQL inspector and /statistics count them.
                "events": sum(len(db.events.get(e.id, [])) for e in records),
                "log_chunks": sum(len(chunks) for chunks in db.log_chunks.values()),
                "size_bytes": None,
                "oldest_record": None if oldest is None else as_utc(oldest).isoformat(),
            },
            details=details,
            listings=listings,
        )
