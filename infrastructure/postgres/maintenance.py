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
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.sql.rows import evaluation_from_row
from infrastructure.sql.tables import evaluations

_SELECTED = ", ".join(column.name for column in evaluations.c)
# $1 updated_before, $2 live statuses, $3 include soft-deleted.
_MATCHES = (
    "updated_at < $1 AND ((deleted_at IS NULL AND status = ANY($2::text[])) "
    "OR ($3 AND deleted_at IS NOT NULL))"
)
SELECT_CANDIDATES = (
    f"SELECT {_SELECTED} FROM evaluations WHERE {_MATCHES} "  # noqa: S608
    "AND ($4::timestamptz IS NULL OR (updated_at, id) > ($4::timestamptz, $5::text)) "
    "ORDER BY updated_at, id LIMIT $6"
)
# One statement: lock what still matches, then remove it with its events and log chunks.
PURGE = f"""
WITH doomed AS (
    SELECT id FROM evaluations WHERE id = ANY($4::text[]) AND {_MATCHES} FOR UPDATE
), events AS (
    DELETE FROM evaluation_events WHERE evaluation_id IN (SELECT id FROM doomed) RETURNING 1
), chunks AS (
    DELETE FROM log_chunks WHERE evaluation_id IN (SELECT id FROM doomed) RETURNING 1
), gone AS (
    DELETE FROM evaluations WHERE id IN (SELECT id FROM doomed) RETURNING id
)
SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM gone) AS ids,
       (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM chunks) AS chunks
"""  # noqa: S608
SELECT_RECENT = (
    f"SELECT {_SELECTED} FROM evaluations WHERE deleted_at IS NULL "  # noqa: S608
    "ORDER BY updated_at DESC, id DESC LIMIT $1"
)


def _selection_arguments(selection: PurgeSelection) -> list[Any]:
    statuses = sorted(status.value for status in selection.statuses)
    return [selection.updated_before, statuses, selection.include_deleted]


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
        arguments = [*_selection_arguments(selection), *position, max(limit, 0)]
        rows = await self._transaction.read(
            lambda connection: connection.fetch(SELECT_CANDIDATES, *arguments)
        )
        return [evaluation_from_row(row, self._seal) for row in rows]

    async def purge(
        self, evaluation_ids: Sequence[EvaluationId], selection: PurgeSelection
    ) -> PurgedRows:
        ids = list(dict.fromkeys(evaluation_ids))
        if not ids:
            return PurgedRows(evaluation_ids=[], events=0, log_chunks=0)
        arguments = [*_selection_arguments(selection), ids]
        row = await self._transaction.write(
            lambda connection: connection.fetchrow(PURGE, *arguments)
        )
        assert row is not None
        return PurgedRows(
            evaluation_ids=[EvaluationId(value) for value in row["ids"]],
            events=int(row["events"]),
            log_chunks=int(row["chunks"]),
        )

    async def recently_updated(self, limit: int) -> builtins.list[Evaluation]:
        rows = await self._transaction.read(
            lambda connection: connection.fetch(SELECT_RECENT, max(limit, 0))
        )
        return [evaluation_from_row(row, self._seal) for row in rows]
