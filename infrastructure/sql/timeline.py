"""Events and logs in SQL: append-only, idempotent, safe under concurrent appends."""

import builtins
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.errors import EvaluationNotFoundError, InvalidRequestError
from application.ports.event_log import EventLog
from application.ports.log_store import AppendedLog, LogStore
from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent, LogChunk, LogSlice, slice_from
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.sql.dialect import insert_for
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import Row
from infrastructure.sql.tables import evaluation_events, evaluations, live_evaluations, log_chunks
from infrastructure.sql.tenancy import session_tenant


def event_row(evaluation_id: str, event_id: str) -> str:
    """What an event's sealed message is bound to."""
    return f"events|{evaluation_id}|{event_id}"


def log_row(evaluation_id: str, offset: int) -> str:
    """What a log piece's sealed content is bound to."""
    return f"log|{evaluation_id}|{offset}"


def event_from_row(row: Row, seal: ColumnSeal = NO_COLUMN_SEAL) -> EvaluationEvent:
    message = row["message"]
    if message is not None:
        message = seal.open(event_row(row["evaluation_id"], row["event_id"]), "message", message)
    return EvaluationEvent(
        evaluation_id=EvaluationId(row["evaluation_id"]),
        event_id=row["event_id"],
        event_type=row["event_type"],
        timestamp=row["timestamp"],
        message=message,
        metadata=dict(row["metadata"] or {}),
    )


def sealed_message(event: EvaluationEvent, seal: ColumnSeal) -> str | None:
    if event.message is None:
        return None
    return seal.one(event_row(event.evaluation_id, event.event_id), "message", event.message)


def log_text(rows: Sequence[tuple[int, str]], evaluation_id: str, seal: ColumnSeal) -> str:
    """The pieces' text, each opened where it is sealed."""
    return "".join(
        seal.open(log_row(evaluation_id, int(start)), "content", content) for start, content in rows
    )


class SqlEventLog(EventLog):
    """``EventLog`` on ``evaluation_events``; ``(tenant_id, evaluation_id, event_id)`` is unique.

    Appending to an unknown or soft-deleted evaluation raises
    ``EvaluationNotFoundError``.
    """

    def __init__(self, session: AsyncSession, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._session = session
        self._seal = seal

    async def append(self, event: EvaluationEvent) -> bool:
        c = evaluation_events.c
        tenant = session_tenant(self._session)
        # INSERT ... SELECT from the live record: a missing parent inserts nothing
        # instead of aborting the transaction with a foreign-key error.
        source = sa.select(
            evaluations.c.tenant_id,
            evaluations.c.id,
            sa.literal(event.event_id, c.event_id.type),
            sa.literal(event.event_type, c.event_type.type),
            sa.literal(event.timestamp, c.timestamp.type),
            sa.literal(sealed_message(event, self._seal), c.message.type),
            sa.literal(event.metadata, c.metadata.type),
        ).where(
            evaluations.c.tenant_id == tenant,
            evaluations.c.id == event.evaluation_id,
            live_evaluations,
        )
        statement = (
            insert_for(self._session, evaluation_events)
            .from_select(
                [
                    c.tenant_id,
                    c.evaluation_id,
                    c.event_id,
                    c.event_type,
                    c.timestamp,
                    c.message,
                    c.metadata,
                ],
                source,
            )
            .on_conflict_do_nothing(index_elements=[c.tenant_id, c.evaluation_id, c.event_id])
        )
        with translate_errors():
            result = await self._session.execute(statement)
            if getattr(result, "rowcount", 0) == 1:
                return True
            parent = await self._session.scalar(
                sa.select(evaluations.c.id).where(
                    evaluations.c.tenant_id == tenant,
                    evaluations.c.id == event.evaluation_id,
                    live_evaluations,
                )
            )
        if parent is None:
            raise EvaluationNotFoundError(event.evaluation_id)
        return False

    async def list(self, evaluation_id: EvaluationId) -> builtins.list[EvaluationEvent]:
        statement = (
            sa.select(evaluation_events)
            .where(
                evaluation_events.c.tenant_id == session_tenant(self._session),
                evaluation_events.c.evaluation_id == evaluation_id,
            )
            .order_by(evaluation_events.c.timestamp, evaluation_events.c.id)
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
        return [event_from_row(row, self._seal) for row in rows]


class SqlLogStore(LogStore):
    """``LogStore`` as chunks in ``log_chunks``, placed by the ``evaluations.log_size`` counter.

    The ``UPDATE ... RETURNING`` reserves the byte range and takes the row lock,
    so concurrent appends serialise on it and get contiguous, distinct offsets;
    the same statement sets ``last_update`` and moves the record's version on.
    Appending to an unknown or soft-deleted evaluation raises
    ``EvaluationNotFoundError``; reading an unknown one gives an empty log.
    """

    def __init__(self, session: AsyncSession, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._session = session
        self._seal = seal

    async def append(
        self, evaluation_id: EvaluationId, content: str, now: datetime, *, last_update: datetime
    ) -> AppendedLog:
        size = len(content.encode("utf-8"))
        c = evaluations.c
        tenant = session_tenant(self._session)
        reserve = (
            sa.update(evaluations)
            .where(c.tenant_id == tenant, c.id == evaluation_id, live_evaluations)
            .values(
                log_size=c.log_size + size,
                last_update=last_update,
                version=c.version + 1,
            )
            .returning(c.log_size, c.version)
        )
        with translate_errors():
            reserved = (await self._session.execute(reserve)).one_or_none()
            if reserved is None:
                raise EvaluationNotFoundError(evaluation_id)
            end, version = reserved
            offset = int(end) - size
            if size:
                await self._session.execute(
                    sa.insert(log_chunks).values(
                        tenant_id=tenant,
                        evaluation_id=evaluation_id,
                        start_offset=offset,
                        content=self._seal.one(log_row(evaluation_id, offset), "content", content),
                        created_at=now,
                    )
                )
        chunk = LogChunk(
            evaluation_id=evaluation_id, offset=offset, content=content, created_at=now
        )
        return AppendedLog(chunk=chunk, version=int(version))

    async def read(self, evaluation_id: EvaluationId, offset: int = 0) -> LogSlice:
        if offset < 0:
            raise InvalidRequestError("offset", "must be zero or positive")
        c = log_chunks.c
        mine = sa.and_(
            c.tenant_id == session_tenant(self._session), c.evaluation_id == evaluation_id
        )
        first = (
            sa.select(sa.func.max(c.start_offset))
            .where(mine, c.start_offset <= offset)
            .scalar_subquery()
        )
        statement = (
            sa.select(c.start_offset, c.content)
            .where(mine, c.start_offset >= sa.func.coalesce(first, 0))
            .order_by(c.start_offset)
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).all()
        if not rows:
            return LogSlice(content="", offset=0, next_offset=0)
        start = int(rows[0][0])
        data = log_text([(int(s), t) for s, t in rows], evaluation_id, self._seal).encode("utf-8")
        return slice_from(start, data, offset)
