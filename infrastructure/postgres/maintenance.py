"""``EvaluationMaintenance`` in hand-written SQL on the request's asyncpg connection.

Same semantics as ``infrastructure.sql.maintenance``; it has to run here on
PostgreSQL because the unit of work that commits a purge is the asyncpg transaction.
"""

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from application.ports.evaluation_maintenance import (
    EvaluationMaintenance,
    PurgeCursor,
    PurgedRows,
    PurgeSelection,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.postgres.tenancy import scoped
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.sql.rows import evaluation_from_row
from infrastructure.sql.tables import evaluations

_SELECTED = ", ".join(column.name for column in evaluations.c)
# $1 the tenant, $2 updated_before, $3 live statuses, $4 include soft-deleted.
_MATCHES = (
    "tenant_id = $1 AND updated_at < $2 AND ((deleted_at IS NULL AND status = ANY($3::text[])) "
    "OR ($4 AND deleted_at IS NOT NULL))"
)
# $8 the subject's metadata key, $9 its value: ``crucible_subject_ids`` (migration 0016)
# is the containment the GIN index on ``metadata`` serves (migration 0011), indexed under
# row-level security too.
_OF_SUBJECT = "id IN (SELECT crucible_subject_ids($8, $9))"


def _candidates(subject: bool) -> str:
    """A read on its own: the tenant ($1) is the one it sets (``scoped``)."""
    matches = f"{_MATCHES} AND {_OF_SUBJECT}" if subject else _MATCHES
    return scoped(
        f"SELECT {_SELECTED} FROM evaluations "  # noqa: S608
        f"WHERE {matches.replace('tenant_id = $1', 'tenant_id = scope.tenant')} "
        "AND ($5::timestamptz IS NULL OR (updated_at, id) > ($5::timestamptz, $6::text)) "
        "ORDER BY updated_at, id LIMIT $7",
        order="q.updated_at, q.id",
    )


def _purge(subject: bool) -> str:
    """One statement: lock what still matches, then remove it with its events and log chunks.

    The subject's parameters are $6 and $7 here ($5 is the ids).
    """
    matches = _MATCHES
    if subject:
        matches += " AND " + _OF_SUBJECT.replace("$8", "$6").replace("$9", "$7")
    return f"""
WITH doomed AS (
    SELECT id FROM evaluations WHERE id = ANY($5::text[]) AND {matches} FOR UPDATE
), events AS (
    DELETE FROM evaluation_events
    WHERE tenant_id = $1 AND evaluation_id IN (SELECT id FROM doomed) RETURNING 1
), chunks AS (
    DELETE FROM log_chunks
    WHERE tenant_id = $1 AND evaluation_id IN (SELECT id FROM doomed) RETURNING 1
), gone AS (
    DELETE FROM evaluations WHERE tenant_id = $1 AND id IN (SELECT id FROM doomed) RETURNING id
)
SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM gone) AS ids,
       (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM chunks) AS chunks
"""  # noqa: S608


SELECT_CANDIDATES = {subject: _candidates(subject) for subject in (False, True)}
PURGE = {subject: _purge(subject) for subject in (False, True)}
SELECT_RECENT = scoped(
    f"SELECT {_SELECTED} FROM evaluations "  # noqa: S608
    "WHERE tenant_id = scope.tenant AND deleted_at IS NULL "
    "ORDER BY updated_at DESC, id DESC LIMIT $2",
    order="q.updated_at DESC, q.id DESC",
)


def _selection_arguments(tenant: TenantId, selection: PurgeSelection) -> list[Any]:
    statuses = sorted(status.value for status in selection.statuses)
    return [tenant, selection.updated_before, statuses, selection.include_deleted]


def _subject_arguments(selection: PurgeSelection) -> list[Any]:
    subject = selection.subject
    return [] if subject is None else [subject.key, subject.value]


class PgEvaluationMaintenance(EvaluationMaintenance):
    def __init__(self, transaction: PgTransaction, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._transaction = transaction

    async def purge_candidates(
        self, selection: PurgeSelection, limit: int, after: PurgeCursor | None = None
    ) -> builtins.list[Evaluation]:
        position: list[datetime | str | None] = (
            [None, None] if after is None else [after.updated_at, after.id]
        )
        arguments = [
            *_selection_arguments(self._transaction.tenant, selection),
            *position,
            max(limit, 0),
            *_subject_arguments(selection),
        ]
        statement = SELECT_CANDIDATES[selection.subject is not None]
        rows = await self._transaction.read(
            lambda connection: connection.fetch(statement, *arguments)
        )
        return [evaluation_from_row(row, self._seal) for row in rows]

    async def purge(
        self, evaluation_ids: Sequence[EvaluationId], selection: PurgeSelection
    ) -> PurgedRows:
        ids = list(dict.fromkeys(evaluation_ids))
        if not ids:
            return PurgedRows(evaluation_ids=[], events=0, log_chunks=0)
        arguments = [
            *_selection_arguments(self._transaction.tenant, selection),
            ids,
            *_subject_arguments(selection),
        ]
        statement = PURGE[selection.subject is not None]
        row = await self._transaction.write(
            lambda connection: connection.fetchrow(statement, *arguments)
        )
        assert row is not None
        return PurgedRows(
            evaluation_ids=[EvaluationId(value) for value in row["ids"]],
            events=int(row["events"]),
            log_chunks=int(row["chunks"]),
        )

    async def scrub(self) -> None:
        # Dead row versions go at the next VACUUM (autovacuum), which no request should
        # wait for; the write-ahead log and its archives are the operator's (ADR 0029).
        pass

    async def recently_updated(self, limit: int) -> builtins.list[Evaluation]:
        rows = await self._transaction.read(
            lambda connection: connection.fetch(
                SELECT_RECENT, self._transaction.tenant, max(limit, 0)
            )
        )
        return [evaluation_from_row(row, self._seal) for row in rows]
