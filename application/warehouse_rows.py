"""Evaluations, events and logs as warehouse rows: the mapping every backend's export shares.

The rows themselves (``EvaluationRow``) are the port's; this is how a domain record
becomes one, used wherever the database does not shape the rows itself.
"""

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC

import msgspec

from application.ports.warehouse import EvaluationRow, EventRow, LogRow
from domain.changes import Change, ChangeCursor
from domain.evaluation import Evaluation
from domain.payload import StoredPayload
from domain.timeline import EvaluationEvent, LogChunk

# A metadata key found in at least this share of a full run's first page gets a column.
PROMOTE_SHARE = 0.5
MAX_PROMOTED = 32
_json = msgspec.json.Encoder()


def sortable(cursor: ChangeCursor) -> str:
    """The cursor's token, zero-padded: compared as text, in feed order (still a token)."""
    return f"{cursor.transaction:016x}-{cursor.sequence:016x}"


def common_keys(evaluations: Sequence[Evaluation]) -> list[str]:
    """Metadata keys present in at least ``PROMOTE_SHARE`` of ``evaluations``, sorted."""
    counts = Counter(key for evaluation in evaluations for key in evaluation.metadata)
    needed = max(1, math.ceil(len(evaluations) * PROMOTE_SHARE))
    found = sorted(key for key, count in counts.items() if count >= needed)
    return found[:MAX_PROMOTED]


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _json.encode(value).decode()


PayloadColumns = tuple[str | None, int | None, str | None, bool | None]


def _payload(payload: StoredPayload | None) -> PayloadColumns:
    if payload is None:
        return None, None, None, None
    return payload.text, payload.size, payload.location.value, payload.truncated


def row_of(evaluation: Evaluation, cursor: str, promoted: Sequence[str]) -> EvaluationRow:
    output, output_size, output_location, output_truncated = _payload(evaluation.output)
    error, error_size, error_location, error_truncated = _payload(evaluation.error)
    return EvaluationRow(
        id=evaluation.id,
        date=evaluation.created_at.astimezone(UTC).date(),
        change_cursor=cursor,
        code=evaluation.code,
        language=evaluation.language,
        status=evaluation.status.value,
        created_at=evaluation.created_at,
        updated_at=evaluation.updated_at,
        started_at=evaluation.started_at,
        completed_at=evaluation.completed_at,
        last_update=evaluation.last_update,
        runtime_ms=evaluation.runtime_ms,
        exit_code=evaluation.exit_code,
        executor_id=evaluation.executor_id,
        container_id=evaluation.container_id,
        celery_task_id=evaluation.celery_task_id,
        retries=evaluation.retries,
        version=evaluation.version,
        output=output,
        output_size=output_size,
        output_location=output_location,
        output_truncated=output_truncated,
        error=error,
        error_size=error_size,
        error_location=error_location,
        error_truncated=error_truncated,
        metadata=_json.encode(evaluation.metadata).decode(),
        promoted={key: _text(evaluation.metadata.get(key)) for key in promoted},
    )


def tombstone(change: Change, cursor: str) -> EvaluationRow:
    day = change.at.astimezone(UTC).date()
    return EvaluationRow(id=change.evaluation_id, date=day, change_cursor=cursor, deleted=True)


def event_row(event: EvaluationEvent, cursor: str) -> EventRow:
    return EventRow(
        evaluation_id=event.evaluation_id,
        event_id=event.event_id,
        date=event.timestamp.astimezone(UTC).date(),
        change_cursor=cursor,
        event_type=event.event_type,
        timestamp=event.timestamp,
        message=event.message,
        metadata=_json.encode(event.metadata).decode(),
    )


def log_row(chunk: LogChunk, cursor: str) -> LogRow:
    return LogRow(
        evaluation_id=chunk.evaluation_id,
        byte_offset=chunk.offset,
        date=chunk.created_at.astimezone(UTC).date(),
        change_cursor=cursor,
        size=chunk.size,
        content=chunk.content,
        created_at=chunk.created_at,
    )
