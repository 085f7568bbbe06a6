"""``EvaluationRepository`` in hand-written SQL on the request's asyncpg connection."""

from typing import Any

from application.errors import (
    DuplicateEvaluationError,
    EvaluationNotFoundError,
    VersionConflictError,
)
from application.ports.evaluation_repository import EvaluationRepository
from application.queries import Projection
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.postgres.tenancy import SCOPE, SCOPE_TENANT, scoped
from infrastructure.postgres.transaction import HeldWrite, PgTransaction, rows_affected
from infrastructure.sql.rows import (
    evaluation_from_row,
    evaluation_values,
    projection_columns,
    projection_from_row,
)
from infrastructure.sql.tables import evaluations

# Built once from the table's own column names (no input reaches these strings).
# Column order of ``evaluation_values``: the statements and the arguments agree by construction.
# ``log_size`` and ``event_count`` belong to the log store and the event log's trigger;
# ``tenant_id`` is the transaction's, never changed by an update.
_COLUMNS = tuple(
    column.name
    for column in evaluations.c
    if column.name not in {"log_size", "event_count", "tenant_id"}
)
_UPDATED = tuple(name for name in _COLUMNS if name != "id")
_SELECTED = ", ".join(column.name for column in evaluations.c)

# Every statement names the tenant as $1: the insert and the reads set it themselves
# (``tenancy``), the update runs in the transaction that set it.
INSERT = (
    f"WITH {SCOPE} INSERT INTO evaluations (tenant_id, {', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({SCOPE_TENANT}, {', '.join(f'${index}' for index in range(2, len(_COLUMNS) + 2))}) "
    "ON CONFLICT (tenant_id, id) DO NOTHING"
)
_ANY = f"SELECT {_SELECTED} FROM evaluations WHERE tenant_id = scope.tenant AND id = $2"  # noqa: S608
SELECT_ANY = scoped(_ANY)
SELECT_LIVE = scoped(f"{_ANY} AND deleted_at IS NULL")
UPDATE = (
    "UPDATE evaluations SET "  # noqa: S608
    + ", ".join(f"{name} = ${index}" for index, name in enumerate(_UPDATED, start=4))
    + " WHERE tenant_id = $1 AND id = $2 AND version = $3"
)
SELECT_VERSION = scoped(
    "SELECT version FROM evaluations WHERE tenant_id = scope.tenant AND id = $2"
)


def _arguments(evaluation: Evaluation, names: tuple[str, ...], seal: ColumnSeal) -> list[Any]:
    values = evaluation_values(evaluation, seal)
    return [values[name] for name in names]


class PgEvaluationRepository(EvaluationRepository):
    """Optimistically versioned records: ``update`` only wins from the version it read."""

    def __init__(self, transaction: PgTransaction, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._transaction = transaction

    async def add(self, evaluation: Evaluation) -> None:
        """Held for the commit, where its audit entry joins it: a taken id raises there."""

        async def check(status: str) -> None:
            if rows_affected(status) != 1:
                raise DuplicateEvaluationError(evaluation.id)

        arguments = (self._transaction.tenant, *_arguments(evaluation, _COLUMNS, self._seal))
        await self._transaction.hold(HeldWrite(INSERT, arguments, check, joinable=evaluation.id))

    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        row = await self._transaction.read(
            lambda connection: connection.fetchrow(
                SELECT_LIVE, self._transaction.tenant, evaluation_id
            )
        )
        return None if row is None else evaluation_from_row(row, self._seal)

    async def get_any(self, evaluation_id: EvaluationId) -> Evaluation | None:
        row = await self._transaction.read(
            lambda connection: connection.fetchrow(
                SELECT_ANY, self._transaction.tenant, evaluation_id
            )
        )
        return None if row is None else evaluation_from_row(row, self._seal)

    async def get_fields(
        self, evaluation_id: EvaluationId, fields: frozenset[str]
    ) -> Projection | None:
        # Column names come from the table (``check_projection`` refused anything else).
        statement = scoped(
            f"SELECT {', '.join(projection_columns(fields))} FROM evaluations "  # noqa: S608
            "WHERE tenant_id = scope.tenant AND id = $2 AND deleted_at IS NULL"
        )
        tenant = self._transaction.tenant
        row = await self._transaction.read(
            lambda connection: connection.fetchrow(statement, tenant, evaluation_id)
        )
        return None if row is None else projection_from_row(row, fields, self._seal)

    async def update(self, evaluation: Evaluation, expected_version: int) -> None:
        """Held for the commit like ``add``: a version that moved on raises there.

        Not ``alone``: an ``UPDATE`` cannot set its tenant before its target is scanned,
        so even by itself it commits in a transaction (``BEGIN`` with the setting).
        """
        tenant = self._transaction.tenant

        async def check(status: str) -> None:
            if rows_affected(status) == 1:
                return
            actual = await self._transaction.read(
                lambda connection: connection.fetchval(SELECT_VERSION, tenant, evaluation.id)
            )
            if actual is None:
                raise EvaluationNotFoundError(evaluation.id)
            raise VersionConflictError(evaluation.id, expected_version, int(actual))

        arguments = (
            tenant,
            evaluation.id,
            expected_version,
            *_arguments(evaluation, _UPDATED, self._seal),
        )
        await self._transaction.hold(
            HeldWrite(UPDATE, arguments, check, joinable=evaluation.id, alone=False)
        )
