"""Evaluation records in SQL: the write model (repository) and the read side (queries).

Both use Core statements on one ``AsyncSession`` shared by the request; nothing
here commits: the use case does, through the unit of work.
"""

import builtins
import math
from datetime import date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.errors import (
    DuplicateEvaluationError,
    EvaluationNotFoundError,
    VersionConflictError,
)
from application.queries import (
    DayStatusCount,
    EvaluationFilter,
    EvaluationPage,
    EvaluationQuery,
    EvaluationStatistics,
    ListCursor,
    RuntimeStatistics,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import ACTIVE_STATUSES, EvaluationStatus
from infrastructure.sql.dialect import insert_for, utc_day
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.tables import evaluation_events, evaluations

PERCENTILES = (50, 95, 99)


class Row(Protocol):
    """A result row by column name: SQLAlchemy's ``RowMapping`` or asyncpg's ``Record``."""

    def __getitem__(self, key: str, /) -> Any: ...


_live = evaluations.c.deleted_at.is_(None)


def _payload(
    location: str | None,
    size: int | None,
    text: str | None,
    compressed: bool | None,
    key: str | None,
) -> StoredPayload | None:
    if location is None:
        return None
    return StoredPayload(
        location=PayloadLocation(location),
        size=int(size or 0),
        text=text or "",
        compressed=bool(compressed),
        key=key,
    )


def evaluation_from_row(row: Row) -> Evaluation:
    """A domain record from an ``evaluations`` row (location NULL means no payload)."""
    return Evaluation(
        id=EvaluationId(row["id"]),
        code=row["code"],
        language=row["language"],
        status=EvaluationStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        runtime_ms=row["runtime_ms"],
        metadata=dict(row["metadata"] or {}),
        output=_payload(
            row["output_location"],
            row["output_size"],
            row["output"],
            row["output_compressed"],
            row["output_key"],
        ),
        error=_payload(
            row["error_location"],
            row["error_size"],
            row["error"],
            row["error_compressed"],
            row["error_key"],
        ),
        celery_task_id=row["celery_task_id"],
        retries=row["retries"],
        executor_id=row["executor_id"],
        container_id=row["container_id"],
        deleted_at=row["deleted_at"],
        version=row["version"],
    )


def _payload_values(prefix: str, payload: StoredPayload | None) -> dict[str, Any]:
    if payload is None:
        return {
            prefix: None,
            f"{prefix}_location": None,
            f"{prefix}_size": None,
            f"{prefix}_compressed": False,
            f"{prefix}_key": None,
        }
    return {
        prefix: payload.text,
        f"{prefix}_location": payload.location.value,
        f"{prefix}_size": payload.size,
        f"{prefix}_compressed": payload.compressed,
        f"{prefix}_key": payload.key,
    }


def evaluation_values(evaluation: Evaluation) -> dict[str, Any]:
    """Column values of every field the domain owns (``log_size`` is the log store's)."""
    return {
        "id": evaluation.id,
        "code": evaluation.code,
        "language": evaluation.language,
        "status": evaluation.status.value,
        "created_at": evaluation.created_at,
        "updated_at": evaluation.updated_at,
        "started_at": evaluation.started_at,
        "completed_at": evaluation.completed_at,
        "runtime_ms": evaluation.runtime_ms,
        "metadata": evaluation.metadata,
        **_payload_values("output", evaluation.output),
        **_payload_values("error", evaluation.error),
        "celery_task_id": evaluation.celery_task_id,
        "retries": evaluation.retries,
        "executor_id": evaluation.executor_id,
        "container_id": evaluation.container_id,
        "deleted_at": evaluation.deleted_at,
        "version": evaluation.version,
    }


class SqlEvaluationRepository:
    """``EvaluationRepository`` on the ``evaluations`` table with optimistic versioning."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, evaluation: Evaluation) -> None:
        # ON CONFLICT DO NOTHING reports the duplicate without aborting the transaction.
        statement = (
            insert_for(self._session, evaluations)
            .values(evaluation_values(evaluation))
            .on_conflict_do_nothing(index_elements=[evaluations.c.id])
        )
        with translate_errors():
            result = await self._session.execute(statement)
        if _rowcount(result) != 1:
            raise DuplicateEvaluationError(evaluation.id)

    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        statement = sa.select(evaluations).where(evaluations.c.id == evaluation_id, _live)
        with translate_errors():
            row = (await self._session.execute(statement)).mappings().first()
        return None if row is None else evaluation_from_row(row)

    async def update(self, evaluation: Evaluation, expected_version: int) -> None:
        values = evaluation_values(evaluation)
        del values["id"]
        statement = (
            sa.update(evaluations)
            .where(evaluations.c.id == evaluation.id, evaluations.c.version == expected_version)
            .values(values)
        )
        with translate_errors():
            result = await self._session.execute(statement)
            if _rowcount(result) == 1:
                return
            actual = await self._session.scalar(
                sa.select(evaluations.c.version).where(evaluations.c.id == evaluation.id)
            )
        if actual is None:
            raise EvaluationNotFoundError(evaluation.id)
        raise VersionConflictError(evaluation.id, expected_version, actual)


def _rowcount(result: sa.Result[Any]) -> int:
    count: int = getattr(result, "rowcount", 0)
    return count


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_conditions(criteria: EvaluationFilter) -> list[sa.ColumnElement[bool]]:
    """``WHERE`` terms of a filter: after is inclusive, before exclusive, prefix case-sensitive."""
    conditions: list[sa.ColumnElement[bool]] = [_live]
    if criteria.status is not None:
        conditions.append(evaluations.c.status == criteria.status.value)
    if criteria.language is not None:
        conditions.append(evaluations.c.language == criteria.language)
    if criteria.created_after is not None:
        conditions.append(evaluations.c.created_at >= criteria.created_after)
    if criteria.created_before is not None:
        conditions.append(evaluations.c.created_at < criteria.created_before)
    if criteria.id_prefix:
        prefix = criteria.id_prefix
        conditions.append(evaluations.c.id.like(_escape_like(prefix) + "%", escape="\\"))
        # SQLite's LIKE ignores ASCII case; the substring test makes both databases agree.
        conditions.append(sa.func.substr(evaluations.c.id, 1, len(prefix)) == prefix)
    return conditions


def nearest_rank(percentile: int, count: int) -> int:
    """Zero-based position of the nearest-rank percentile in ``count`` sorted values."""
    return max(0, math.ceil(percentile / 100 * count) - 1)


class SqlEvaluationQueries:
    """``EvaluationQueries`` computed by the database: filters, paging and aggregates in SQL."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def list(self, query: EvaluationQuery) -> EvaluationPage:
        conditions = filter_conditions(query.filter)
        limit = max(query.limit, 0)
        statement = sa.select(evaluations).where(*conditions)
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
            total = None
            if query.include_total:
                total = await self._session.scalar(
                    sa.select(sa.func.count()).select_from(evaluations).where(*conditions)
                )
        items = [evaluation_from_row(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and items:
            last = items[-1]
            next_cursor = ListCursor(created_at=last.created_at, id=last.id)
        return EvaluationPage(
            items=items, next_cursor=next_cursor, total=None if total is None else int(total)
        )

    async def blob_keys(self) -> set[str]:
        keys: set[str] = set()
        with translate_errors():
            for column in (evaluations.c.output_key, evaluations.c.error_key):
                result = await self._session.stream_scalars(
                    sa.select(column).where(column.is_not(None)).execution_options(yield_per=1000)
                )
                keys.update([key async for key in result])
        return keys

    async def daily_status_counts(self, since: datetime) -> builtins.list[DayStatusCount]:
        day = utc_day(self._session, evaluations.c.created_at).label("day")
        statement = (
            sa.select(day, evaluations.c.status, sa.func.count())
            .where(_live, evaluations.c.created_at >= since)
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

    async def list_active(self) -> builtins.list[Evaluation]:
        statement = (
            sa.select(evaluations)
            .where(_live, evaluations.c.status.in_([status.value for status in ACTIVE_STATUSES]))
            .order_by(evaluations.c.created_at.desc(), evaluations.c.id.desc())
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
        return [evaluation_from_row(row) for row in rows]

    async def statistics(self) -> EvaluationStatistics:
        with translate_errors():
            return await self._statistics()

    async def _statistics(self) -> EvaluationStatistics:
        session = self._session
        by_status: dict[str, int] = {}
        status_rows = await session.execute(
            sa.select(evaluations.c.status, sa.func.count())
            .where(_live)
            .group_by(evaluations.c.status)
        )
        for status, count in status_rows:
            by_status[status] = int(count)
        language_rows = await session.execute(
            sa.select(evaluations.c.language, sa.func.count())
            .where(_live)
            .group_by(evaluations.c.language)
        )
        by_language = {language: int(count) for language, count in language_rows}

        runtime = evaluations.c.runtime_ms
        with_runtime = [_live, runtime.is_not(None)]
        aggregate = (
            await session.execute(
                sa.select(sa.func.count(runtime), sa.func.avg(runtime), sa.func.max(runtime)).where(
                    *with_runtime
                )
            )
        ).one()
        runtime_count = int(aggregate[0])
        percentiles: dict[int, int | None] = dict.fromkeys(PERCENTILES)
        if runtime_count:
            for percentile in PERCENTILES:
                value = await session.scalar(
                    sa.select(runtime)
                    .where(*with_runtime)
                    .order_by(runtime)
                    .limit(1)
                    .offset(nearest_rank(percentile, runtime_count))
                )
                percentiles[percentile] = None if value is None else int(value)

        bytes_by_location: dict[str, int] = {}
        for location, size in (
            (evaluations.c.output_location, evaluations.c.output_size),
            (evaluations.c.error_location, evaluations.c.error_size),
        ):
            rows = await session.execute(
                sa.select(location, sa.func.coalesce(sa.func.sum(size), 0))
                .where(_live, location.is_not(None))
                .group_by(location)
            )
            for name, total in rows:
                bytes_by_location[name] = bytes_by_location.get(name, 0) + int(total)

        events = await session.scalar(
            sa.select(sa.func.count()).select_from(evaluation_events.join(evaluations)).where(_live)
        )
        totals = (
            await session.execute(
                sa.select(
                    sa.func.count(), sa.func.coalesce(sa.func.sum(evaluations.c.log_size), 0)
                ).where(_live)
            )
        ).one()
        return EvaluationStatistics(
            total=int(totals[0]),
            by_status=by_status,
            by_language=by_language,
            runtime=RuntimeStatistics(
                count=runtime_count,
                average_ms=None if aggregate[1] is None else float(aggregate[1]),
                p50_ms=percentiles[50],
                p95_ms=percentiles[95],
                p99_ms=percentiles[99],
                max_ms=None if aggregate[2] is None else int(aggregate[2]),
            ),
            bytes_by_location=bytes_by_location,
            events=int(events or 0),
            log_bytes=int(totals[1]),
        )
