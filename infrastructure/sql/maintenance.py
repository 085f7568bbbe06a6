"""``EvaluationMaintenance`` on SQLAlchemy Core: the SQLite configuration (and PostgreSQL)."""

import builtins
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from application.ports.evaluation_maintenance import (
    EvaluationMaintenance,
    PurgeCursor,
    PurgedRows,
    PurgeSelection,
    SubjectTag,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.sql.dialect import dialect_name
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import evaluation_from_row
from infrastructure.sql.tables import evaluation_events, evaluations, log_chunks
from infrastructure.sql.tenancy import session_tenant


def subject_condition(subject: SubjectTag, dialect: str) -> sa.ColumnElement[bool]:
    """``SubjectTag.tags`` (a string equal to the value, never a number or an array).

    On PostgreSQL ``crucible_subject_ids`` (migration 0016) finds them: the containment
    the GIN index on ``metadata`` serves (migration 0011), indexed under row-level
    security too.
    """
    if dialect == "postgresql":
        lookup = sa.func.crucible_subject_ids(
            sa.literal(subject.key, sa.Text()), sa.literal(subject.value, sa.Text())
        )
        return evaluations.c.id.in_(sa.select(lookup))
    path = sa.literal(json_path(subject.key), sa.Text())
    return sa.and_(
        sa.func.json_type(evaluations.c.metadata, path) == "text",
        sa.func.json_extract(evaluations.c.metadata, path) == subject.value,
    )


def json_path(key: str) -> str:
    """SQLite's path of a top-level key, quoted so dots and brackets in it are plain (a
    quote cannot be: ``SUBJECT_METADATA_KEY`` allows none)."""
    if '"' in key:
        raise ValueError(f"metadata key {key!r} holds a double quote")
    return f'$."{key}"'


def selection_condition(
    tenant: TenantId, selection: PurgeSelection, dialect: str
) -> sa.ColumnElement[bool]:
    """``WHERE`` of ``PurgeSelection.matches`` among ``tenant``'s records."""
    live = sa.and_(
        evaluations.c.deleted_at.is_(None),
        evaluations.c.status.in_(sorted(status.value for status in selection.statuses)),
    )
    kept = live
    if selection.include_deleted:
        kept = sa.or_(live, evaluations.c.deleted_at.is_not(None))
    condition = sa.and_(
        evaluations.c.tenant_id == tenant, evaluations.c.updated_at < selection.updated_before, kept
    )
    if selection.subject is not None:
        condition = sa.and_(condition, subject_condition(selection.subject, dialect))
    return condition


class SqlEvaluationMaintenance(EvaluationMaintenance):
    """Runs on the request's session; ``purge`` writes in its transaction, never commits."""

    def __init__(self, session: AsyncSession, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._session = session

    async def purge_candidates(
        self, selection: PurgeSelection, limit: int, after: PurgeCursor | None = None
    ) -> builtins.list[Evaluation]:
        dialect = dialect_name(self._session)
        tenant = session_tenant(self._session)
        statement = sa.select(evaluations).where(selection_condition(tenant, selection, dialect))
        if after is not None:
            statement = statement.where(
                sa.tuple_(evaluations.c.updated_at, evaluations.c.id)
                > sa.tuple_(
                    sa.literal(after.updated_at, evaluations.c.updated_at.type),
                    sa.literal(after.id, evaluations.c.id.type),
                )
            )
        statement = statement.order_by(evaluations.c.updated_at, evaluations.c.id).limit(
            max(limit, 0)
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
        return [evaluation_from_row(row, self._seal) for row in rows]

    async def purge(
        self, evaluation_ids: Sequence[EvaluationId], selection: PurgeSelection
    ) -> PurgedRows:
        ids = list(dict.fromkeys(evaluation_ids))
        if not ids:
            return PurgedRows(evaluation_ids=[], events=0, log_chunks=0)
        dialect = dialect_name(self._session)
        tenant = session_tenant(self._session)
        matches = selection_condition(tenant, selection, dialect)
        doomed = sa.select(evaluations.c.id).where(evaluations.c.id.in_(ids), matches)
        with translate_errors():
            if dialect == "postgresql":
                # Lock the rows first: a change committed meanwhile waits, then no longer matches.
                await self._session.execute(doomed.with_for_update())
            events = await self._delete(
                sa.delete(evaluation_events).where(
                    evaluation_events.c.tenant_id == tenant,
                    evaluation_events.c.evaluation_id.in_(doomed),
                )
            )
            chunks = await self._delete(
                sa.delete(log_chunks).where(
                    log_chunks.c.tenant_id == tenant, log_chunks.c.evaluation_id.in_(doomed)
                )
            )
            gone = await self._session.execute(
                sa.delete(evaluations)
                .where(evaluations.c.id.in_(ids), matches)
                .returning(evaluations.c.id)
            )
            purged = [EvaluationId(row[0]) for row in gone.all()]
        return PurgedRows(evaluation_ids=sorted(purged), events=events, log_chunks=chunks)

    async def _delete(self, statement: sa.Delete) -> int:
        result: Any = await self._session.execute(statement)
        return int(result.rowcount or 0)

    async def scrub(self) -> None:
        if dialect_name(self._session) != "sqlite":
            return  # PostgreSQL: see ``PgEvaluationMaintenance.scrub``
        bind = self._session.bind
        assert isinstance(bind, AsyncEngine)
        async with bind.connect() as connection:
            with translate_errors():
                # Merging every segment drops the removed rows' terms from the index;
                # secure_delete (engine.py) zeroes the pages that frees.
                found = await connection.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE name = 'search_text'"
                )
                if found.first() is not None:
                    await connection.exec_driver_sql(
                        "INSERT INTO search_text(search_text) VALUES ('optimize')"
                    )
                await connection.commit()
                # The log still holds the pages as they were before the purge.
                await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def recently_updated(self, limit: int) -> builtins.list[Evaluation]:
        statement = (
            sa.select(evaluations)
            .where(
                evaluations.c.tenant_id == session_tenant(self._session),
                evaluations.c.deleted_at.is_(None),
            )
            .order_by(evaluations.c.updated_at.desc(), evaluations.c.id.desc())
            .limit(max(limit, 0))
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
        return [evaluation_from_row(row, self._seal) for row in rows]
