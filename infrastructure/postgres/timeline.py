"""``EventLog`` and ``LogStore`` in hand-written SQL on the request's asyncpg connection.

Same statements and guarantees as ``infrastructure.sql.timeline``: idempotent
event appends, log chunks placed by the row-locking ``log_size`` counter (which
also sets ``last_update`` and moves the record's version on).
"""

import builtins
from datetime import datetime

from application.errors import EvaluationNotFoundError, InvalidRequestError
from application.ports.event_log import EventLog
from application.ports.log_store import AppendedLog, LogStore
from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent, LogChunk, LogSlice, slice_from
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.postgres.tenancy import scoped
from infrastructure.postgres.transaction import PgTransaction, rows_affected
from infrastructure.sql.timeline import event_from_row, log_row, log_text, sealed_message

# Each write names the transaction's tenant as its last parameter, each read (which sets
# it itself, ``tenancy.scoped``) as its first.
INSERT_EVENT = """
INSERT INTO evaluation_events
    (tenant_id, evaluation_id, event_id, event_type, timestamp, message, metadata)
SELECT tenant_id, id, $2, $3, $4, $5, $6 FROM evaluations
WHERE tenant_id = $7 AND id = $1 AND deleted_at IS NULL
ON CONFLICT (tenant_id, evaluation_id, event_id) DO NOTHING
"""
SELECT_LIVE_ID = scoped(
    "SELECT id FROM evaluations WHERE tenant_id = scope.tenant AND id = $2 AND deleted_at IS NULL"
)
SELECT_EVENTS = scoped(
    """
SELECT evaluation_id, event_id, event_type, timestamp, message, metadata, id AS sequence
FROM evaluation_events WHERE tenant_id = scope.tenant AND evaluation_id = $2""",
    order="q.timestamp, q.sequence",
)
RESERVE_LOG = """
UPDATE evaluations
SET log_size = log_size + $2, last_update = $3, version = version + 1
WHERE tenant_id = $4 AND id = $1 AND deleted_at IS NULL RETURNING log_size, version
"""
INSERT_CHUNK = """
INSERT INTO log_chunks (evaluation_id, start_offset, content, created_at, tenant_id)
VALUES ($1, $2, $3, $4, $5)
"""
# From the chunk holding ``offset`` (or the first one) to the end.
SELECT_CHUNKS = scoped(
    """
SELECT start_offset, content FROM log_chunks
WHERE tenant_id = scope.tenant AND evaluation_id = $2 AND start_offset >= COALESCE(
    (SELECT max(start_offset) FROM log_chunks
     WHERE tenant_id = scope.tenant AND evaluation_id = $2 AND start_offset <= $3), 0)""",
    order="q.start_offset",
)


class PgEventLog(EventLog):
    """Events of live evaluations; a redelivered ``event_id`` inserts nothing."""

    def __init__(self, transaction: PgTransaction, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._transaction = transaction
        self._seal = seal

    async def append(self, event: EvaluationEvent) -> bool:
        arguments = (
            event.evaluation_id,
            event.event_id,
            event.event_type,
            event.timestamp,
            sealed_message(event, self._seal),
            event.metadata,
            self._transaction.tenant,
        )
        status: str = await self._transaction.write(
            lambda connection: connection.execute(INSERT_EVENT, *arguments)
        )
        if rows_affected(status) == 1:
            return True
        parent = await self._transaction.read(
            lambda connection: connection.fetchval(
                SELECT_LIVE_ID, self._transaction.tenant, event.evaluation_id
            )
        )
        if parent is None:
            raise EvaluationNotFoundError(event.evaluation_id)
        return False

    async def list(self, evaluation_id: EvaluationId) -> builtins.list[EvaluationEvent]:
        rows = await self._transaction.read(
            lambda connection: connection.fetch(
                SELECT_EVENTS, self._transaction.tenant, evaluation_id
            )
        )
        return [event_from_row(row, self._seal) for row in rows]


class PgLogStore(LogStore):
    """Append-only log chunks; concurrent appends get contiguous, distinct offsets."""

    def __init__(self, transaction: PgTransaction, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._transaction = transaction
        self._seal = seal

    async def append(
        self, evaluation_id: EvaluationId, content: str, now: datetime, *, last_update: datetime
    ) -> AppendedLog:
        size = len(content.encode("utf-8"))
        tenant = self._transaction.tenant
        reserved = await self._transaction.write(
            lambda connection: connection.fetchrow(
                RESERVE_LOG, evaluation_id, size, last_update, tenant
            )
        )
        if reserved is None:
            raise EvaluationNotFoundError(evaluation_id)
        offset = int(reserved["log_size"]) - size
        if size:
            stored = self._seal.one(log_row(evaluation_id, offset), "content", content)
            await self._transaction.write(
                lambda connection: connection.execute(
                    INSERT_CHUNK, evaluation_id, offset, stored, now, tenant
                )
            )
        chunk = LogChunk(
            evaluation_id=evaluation_id, offset=offset, content=content, created_at=now
        )
        return AppendedLog(chunk=chunk, version=int(reserved["version"]))

    async def read(self, evaluation_id: EvaluationId, offset: int = 0) -> LogSlice:
        if offset < 0:
            raise InvalidRequestError("offset", "must be zero or positive")
        rows = await self._transaction.read(
            lambda connection: connection.fetch(
                SELECT_CHUNKS, self._transaction.tenant, evaluation_id, offset
            )
        )
        if not rows:
            return LogSlice(content="", offset=0, next_offset=0)
        start = int(rows[0]["start_offset"])
        pieces = [(int(row["start_offset"]), row["content"]) for row in rows]
        data = log_text(pieces, evaluation_id, self._seal).encode("utf-8")
        return slice_from(start, data, offset)
