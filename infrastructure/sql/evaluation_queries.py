"""``EvaluationQueries`` in SQL: filters, keyset paging and aggregates computed by the database.

Core statements on the request's ``AsyncSession``; nothing here writes.
"""

import builtins
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.evaluation_queries import EvaluationQueries
from application.queries import (
    PERCENTILES,
    DayStatusCount,
    EvaluationFilter,
    EvaluationPage,
    EvaluationQuery,
    EvaluationStatistics,
    HourCount,
    ProjectedPage,
    RecordTally,
    RuntimeStatistics,
    nearest_rank,
)
from domain.evaluation import Evaluation
from domain.status import ACTIVE_STATUSES, EvaluationStatus
from domain.tenancy import TenantId
from domain.timestamps import as_utc
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.sql.dialect import dialect_name, utc_day, utc_hour
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import (
    evaluation_from_row,
    evaluation_page,
    page_columns,
    projected_page,
)
from infrastructure.sql.search import search_condition
from infrastructure.sql.tables import (
    COUNTER_NAMES,
    evaluation_counters,
    evaluation_runtimes,
    evaluations,
    live_evaluations,
)
from infrastructure.sql.tenancy import session_tenant

_MAX_CODE_POINT = 0x10FFFF
_STATUS_ARRAY = postgresql.ARRAY(sa.String())
_SURROGATES = range(0xD800, 0xE000)


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix``, by code point.

    ``None`` when there is none (the prefix is all U+10FFFF). Code point order is what
    PostgreSQL's pattern operators (``~<~``), SQLite's BINARY ``<`` and Python's ``<``
    all compare by (UTF-8 keeps it byte for byte), so ``prefix <= id < bound`` is the
    same range everywhere and an index on ``id`` serves it.
    """
    kept = prefix.rstrip(chr(_MAX_CODE_POINT))
    if not kept:
        return None
    following = ord(kept[-1]) + 1
    if following in _SURROGATES:  # not characters: no stored id holds one
        following = _SURROGATES.stop
    return kept[:-1] + chr(following)


def _prefix_conditions(prefix: str, dialect: str) -> list[sa.ColumnElement[bool]]:
    """``id`` starts with ``prefix``, case-sensitively, as an index range plus the exact test."""
    # PostgreSQL compares byte by byte with the operators of the text_pattern_ops index on
    # live ids (migration 0007): its own ``<`` follows the database's collation, which may
    # order otherwise. SQLite's ``<`` is already BINARY.
    postgres = dialect == "postgresql"
    id_ = evaluations.c.id
    conditions = [id_.op("~>=~", is_comparison=True)(prefix) if postgres else id_ >= prefix]
    upper = prefix_upper_bound(prefix)
    if upper is not None:
        conditions.append(id_.op("~<~", is_comparison=True)(upper) if postgres else id_ < upper)
    conditions.append(sa.func.substr(evaluations.c.id, 1, len(prefix)) == prefix)
    return conditions


def filter_conditions(
    tenant: TenantId, criteria: EvaluationFilter, dialect: str
) -> list[sa.ColumnElement[bool]]:
    """``WHERE`` terms of a filter of ``tenant``'s records: after is inclusive, before
    exclusive, prefix case-sensitive."""
    conditions: list[sa.ColumnElement[bool]] = [evaluations.c.tenant_id == tenant, live_evaluations]
    if criteria.status is not None:
        conditions.append(evaluations.c.status == criteria.status.value)
    if criteria.language is not None:
        conditions.append(evaluations.c.language == criteria.language)
    if criteria.created_after is not None:
        conditions.append(evaluations.c.created_at >= criteria.created_after)
    if criteria.created_before is not None:
        conditions.append(evaluations.c.created_at < criteria.created_before)
    if criteria.id_prefix:
        conditions += _prefix_conditions(criteria.id_prefix, dialect)
    if criteria.search is not None:
        conditions.append(search_condition(criteria.search, dialect, tenant))
    return conditions


class SqlEvaluationQueries(EvaluationQueries):
    """``EvaluationQueries`` computed by the database: filters, paging and aggregates in SQL."""

    def __init__(self, session: AsyncSession, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._session = session

    @property
    def _tenant(self) -> TenantId:
        return session_tenant(self._session)

    @property
    def _mine(self) -> sa.ColumnElement[bool]:
        """The session's tenant's records (live or not)."""
        return evaluations.c.tenant_id == self._tenant

    async def list(self, query: EvaluationQuery) -> EvaluationPage:
        rows, total = await self._page(query, list(evaluations.c))
        return evaluation_page(
            rows, query.limit, total, lambda row: evaluation_from_row(row, self._seal)
        )

    async def list_fields(self, query: EvaluationQuery, fields: frozenset[str]) -> ProjectedPage:
        columns: builtins.list[sa.ColumnElement[Any]] = [
            evaluations.c[name] for name in page_columns(fields)
        ]
        rows, total = await self._page(query, columns)
        return projected_page(rows, query.limit, total, fields, self._seal)

    async def _page(
        self, query: EvaluationQuery, columns: builtins.list[sa.ColumnElement[Any]]
    ) -> tuple[Sequence[sa.RowMapping], int | None]:
        """Up to ``limit + 1`` rows of ``columns`` (one more tells whether a page follows)."""
        conditions = filter_conditions(self._tenant, query.filter, dialect_name(self._session))
        limit = max(query.limit, 0)
        statement = sa.select(*columns).where(*conditions)
        if query.cursor is not None:
            statement = statement.where(
                sa.tuple_(evaluations.c.created_at, evaluations.c.id)
                < sa.tuple_(
                    sa.literal(query.cursor.created_at, evaluations.c.created_at.type),
                    sa.literal(query.cursor.id, evaluations.c.id.type),
                )
            )
        elif query.offset > 0:
            statement = statement.offset(query.offset)
        statement = statement.order_by(
            evaluations.c.created_at.desc(), evaluations.c.id.desc()
        ).limit(limit + 1)
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
            total = await self._session.scalar(self._total(query.filter, conditions))
        return rows, int(total or 0)

    def _total(
        self, where: EvaluationFilter, conditions: builtins.list[sa.ColumnElement[bool]]
    ) -> sa.Select[Any]:
        """How many records match: from the counters when they can tell (a few rows, kept in
        each write's transaction), else a count the filter's index serves."""
        if where.created_after or where.created_before or where.id_prefix or where.search:
            return sa.select(sa.func.count()).select_from(evaluations).where(*conditions)
        counted = sa.select(sa.func.sum(evaluation_counters.c.evaluations)).where(
            evaluation_counters.c.tenant_id == self._tenant
        )
        if where.status is not None:
            counted = counted.where(evaluation_counters.c.status == where.status.value)
        if where.language is not None:
            counted = counted.where(evaluation_counters.c.language == where.language)
        return counted

    async def blob_keys(self) -> set[str]:
        keys: set[str] = set()
        with translate_errors():
            for column in (evaluations.c.output_key, evaluations.c.error_key):
                result = await self._session.stream_scalars(
                    sa.select(column)
                    .where(self._mine, column.is_not(None))
                    .execution_options(yield_per=1000)
                )
                keys.update([key async for key in result])
        return keys

    async def tallies(self) -> dict[str, RecordTally]:
        c = evaluations.c
        statement = sa.select(c.id, c.version, c.event_count, c.log_size).where(self._mine)
        with translate_errors():
            result = await self._session.stream(statement.execution_options(yield_per=1000))
            return {
                row[0]: RecordTally(version=row[1], events=row[2], log_bytes=row[3])
                async for row in result
            }

    async def daily_status_counts(self, since: datetime) -> builtins.list[DayStatusCount]:
        statement: sa.Select[Any]
        if dialect_name(self._session) == "postgresql":
            # One range of idx_evaluations_live_status per status: with no status
            # condition PostgreSQL reads the whole index (every live record) for the
            # window's few (80 ms at a million records, a third of that this way).
            status = sa.column("status", sa.String)
            statuses = (
                sa.func.unnest(sa.literal([s.value for s in EvaluationStatus], _STATUS_ARRAY))
                .table_valued(status)
                .render_derived(name="statuses")
            )
            window = (
                sa.select(evaluations.c.created_at)
                .where(
                    self._mine,
                    evaluations.c.status == statuses.c.status,
                    live_evaluations,
                    evaluations.c.created_at >= since,
                )
                .lateral("window")
            )
            day = utc_day(self._session, window.c.created_at).label("day")
            statement = (
                sa.select(day, statuses.c.status, sa.func.count())
                .select_from(statuses.join(window, sa.true()))
                .group_by(day, statuses.c.status)
                .order_by(day, statuses.c.status)
            )
        else:
            day = utc_day(self._session, evaluations.c.created_at).label("day")
            statement = (
                sa.select(day, evaluations.c.status, sa.func.count())
                .where(self._mine, live_evaluations, evaluations.c.created_at >= since)
                .group_by(day, evaluations.c.status)
                .order_by(day, evaluations.c.status)
            )
        with translate_errors():
            rows = (await self._session.execute(statement)).all()
        return [
            DayStatusCount(
                day=value if isinstance(value, date) else date.fromisoformat(str(value)),
                status=str(status),
                count=int(count),
            )
            for value, status, count in rows
        ]

    async def hourly_counts(self, since: datetime) -> builtins.list[HourCount]:
        # A range of idx_evaluations_created_at: the records created since ``since``.
        hour = utc_hour(self._session, evaluations.c.created_at).label("hour")
        statement = (
            sa.select(hour, sa.func.count())
            .where(self._mine, live_evaluations, evaluations.c.created_at >= since)
            .group_by(hour)
            .order_by(hour)
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).all()
        return [
            HourCount(
                # Naive UTC from both databases (PostgreSQL's timestamp, SQLite's text).
                hour=as_utc(
                    value if isinstance(value, datetime) else datetime.fromisoformat(value)
                ),
                count=int(count),
            )
            for value, count in rows
        ]

    async def list_active(self) -> builtins.list[Evaluation]:
        statement = (
            sa.select(evaluations)
            .where(
                self._mine,
                live_evaluations,
                evaluations.c.status.in_([status.value for status in ACTIVE_STATUSES]),
            )
            .order_by(evaluations.c.created_at.desc(), evaluations.c.id.desc())
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
        return [evaluation_from_row(row, self._seal) for row in rows]

    async def statistics(self) -> EvaluationStatistics:
        with translate_errors():
            return await self._statistics()

    async def _statistics(self) -> EvaluationStatistics:
        """From what the triggers keep, whatever the number of records
        (``docs/bench-scale.md``): the counters of migration 0003 (a few hundred rows at
        most), then the percentiles of the bucketed runtime histogram of migration 0006
        (at most 3,712 rows). Two statements: one that joins them costs more on the
        server (1.75 against 1.29 ms at a million records) than the round trip it saves."""
        session = self._session
        sums = [sa.func.sum(evaluation_counters.c[name]) for name in COUNTER_NAMES]
        groups = (
            await session.execute(
                sa.select(evaluation_counters.c.status, evaluation_counters.c.language, *sums)
                .where(evaluation_counters.c.tenant_id == self._tenant)
                .group_by(evaluation_counters.c.status, evaluation_counters.c.language)
                .having(sums[0] > 0)
            )
        ).all()
        totals = dict.fromkeys(COUNTER_NAMES, 0)
        by_status: dict[str, int] = {}
        by_language: dict[str, int] = {}
        for status, language, *values in groups:
            count = int(values[0])
            by_status[status] = by_status.get(status, 0) + count
            by_language[language] = by_language.get(language, 0) + count
            for name, value in zip(COUNTER_NAMES, values, strict=True):
                totals[name] += int(value or 0)
        runtime_count = totals["runtime_count"]
        percentiles: dict[int, int | None] = dict.fromkeys(PERCENTILES)
        max_ms: int | None = None
        if runtime_count:
            percentiles, max_ms = await self._runtime_percentiles(runtime_count)
        return EvaluationStatistics(
            total=totals["evaluations"],
            by_status=by_status,
            by_language=by_language,
            runtime=RuntimeStatistics(
                count=runtime_count,
                average_ms=totals["runtime_sum"] / runtime_count if runtime_count else None,
                p50_ms=percentiles[50],
                p95_ms=percentiles[95],
                p99_ms=percentiles[99],
                max_ms=max_ms,
            ),
            bytes_by_location={
                location: totals[f"{location}_bytes"]
                for location in ("inline", "file", "s3")
                if totals[f"{location}_payloads"] > 0
            },
            events=totals["events"],
            log_bytes=totals["log_bytes"],
            payloads_by_location={
                location: totals[f"{location}_payloads"]
                for location in ("inline", "file", "s3")
                if totals[f"{location}_payloads"] > 0
            },
        )

    async def _runtime_percentiles(self, count: int) -> tuple[dict[int, int | None], int | None]:
        """Nearest-rank percentiles and the maximum in one window pass over the runtime
        histogram's buckets: each the lower bound of its bucket (exact below 1,024 ms,
        under 0.8 % low above, ``application/runtime_buckets.py``)."""
        histogram = evaluation_runtimes.c
        cumulative = (
            sa.select(
                histogram.runtime_ms,
                sa.func.sum(histogram.count)
                .over(order_by=histogram.runtime_ms)
                .label("cumulative"),
            )
            .where(histogram.tenant_id == self._tenant, histogram.count > 0)
            .subquery()
        )
        ranks = {p: nearest_rank(p, count) + 1 for p in PERCENTILES}
        row = (
            await self._session.execute(
                sa.select(
                    *(
                        sa.func.min(
                            sa.case(
                                (cumulative.c.cumulative >= rank, cumulative.c.runtime_ms),
                            )
                        )
                        for rank in ranks.values()
                    ),
                    sa.func.max(cumulative.c.runtime_ms),
                )
            )
        ).one()
        values = [None if value is None else int(value) for value in row]
        return dict(zip(ranks, values[:-1], strict=True)), values[-1]
