"""Row mapping between the ``evaluations`` table and the domain ``Evaluation``.

One mapping for both SQL stacks: SQLAlchemy Core (``infrastructure.sql``) and the
asyncpg hot paths (``infrastructure.postgres``) read and write the same columns. With
``ENCRYPTION=on`` the text columns are sealed here, on the way in, and opened on the way
out (``ColumnSeal``, ADR 0031), so every adapter of both stacks stores the same bytes.
"""

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from application.queries import EvaluationPage, ListCursor, ProjectedPage, Projection
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal


class Row(Protocol):
    """A result row by column name: SQLAlchemy's ``RowMapping`` or asyncpg's ``Record``."""

    def __getitem__(self, key: str, /) -> Any: ...


FetchedRow = TypeVar("FetchedRow")


def _payload(
    location: str | None,
    size: int | None,
    text: str | None,
    compressed: bool | None,
    key: str | None,
    tail: str | None,
) -> StoredPayload | None:
    if location is None:
        return None
    return StoredPayload(
        location=PayloadLocation(location),
        size=int(size or 0),
        text=text or "",
        compressed=bool(compressed),
        key=key,
        tail=tail,
    )


# The text columns sealed with ENCRYPTION=on (``metadata``: the ENCRYPTED_METADATA_KEYS).
SEALED_COLUMNS = ("code", "output", "error", "output_tail", "error_tail", "retry_message")


def sealed_row(evaluation_id: str) -> str:
    """What a record's sealed values are bound to."""
    return f"evaluations|{evaluation_id}"


def _opened_payload(
    seal: ColumnSeal, row: str, kind: str, payload: StoredPayload | None
) -> StoredPayload | None:
    if payload is None:
        return None
    text = seal.open(row, kind, payload.text)
    tail = seal.open_optional(row, f"{kind}_tail", payload.tail)
    if text is payload.text and tail is payload.tail:
        return payload
    return StoredPayload(
        payload.location, payload.size, text, payload.compressed, payload.key, tail
    )


def opened(evaluation: Evaluation, seal: ColumnSeal) -> Evaluation:
    """``evaluation`` with its sealed values opened (itself when none is sealed)."""
    row = sealed_row(evaluation.id)
    code = seal.open(row, "code", evaluation.code)
    output = _opened_payload(seal, row, "output", evaluation.output)
    error = _opened_payload(seal, row, "error", evaluation.error)
    retry_message = seal.open_optional(row, "retry_message", evaluation.retry_message)
    metadata = (
        seal.open_metadata(row, evaluation.metadata) if seal.metadata_keys else evaluation.metadata
    )
    if (
        code is evaluation.code
        and output is evaluation.output
        and error is evaluation.error
        and retry_message is evaluation.retry_message
        and metadata is evaluation.metadata
    ):
        return evaluation
    return msgspec.structs.replace(
        evaluation,
        code=code,
        output=output,
        error=error,
        retry_message=retry_message,
        metadata=metadata,
    )


def evaluation_from_row(row: Row, seal: ColumnSeal = NO_COLUMN_SEAL) -> Evaluation:
    """A domain record from an ``evaluations`` row (location NULL means no payload)."""
    return opened(_evaluation_from_row(row), seal)


def _evaluation_from_row(row: Row) -> Evaluation:
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
            row["output_tail"],
        ),
        error=_payload(
            row["error_location"],
            row["error_size"],
            row["error"],
            row["error_compressed"],
            row["error_key"],
            row["error_tail"],
        ),
        celery_task_id=row["celery_task_id"],
        retries=row["retries"],
        executor_id=row["executor_id"],
        container_id=row["container_id"],
        exit_code=row["exit_code"],
        timeout=row["timeout"],
        last_update=row["last_update"],
        retry_message=row["retry_message"],
        final_failure=row["final_failure"],
        deleted_at=row["deleted_at"],
        version=row["version"],
    )


# The columns a whole record is read from, in the order ``evaluation_from_values`` expects
# (the domain's own: ``log_size`` and ``event_count`` belong to the log store and events).
RECORD_COLUMNS = (
    "id",
    "code",
    "language",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "runtime_ms",
    "metadata",
    "output",
    "output_location",
    "output_size",
    "output_compressed",
    "output_key",
    "error",
    "error_location",
    "error_size",
    "error_compressed",
    "error_key",
    "celery_task_id",
    "retries",
    "executor_id",
    "container_id",
    "exit_code",
    "timeout",
    "last_update",
    "retry_message",
    "final_failure",
    "deleted_at",
    "version",
    "output_tail",
    "error_tail",
)
_STATUSES = {status.value: status for status in EvaluationStatus}
_LOCATIONS = {location.value: location for location in PayloadLocation}


def evaluation_from_values(values: Sequence[Any], seal: ColumnSeal = NO_COLUMN_SEAL) -> Evaluation:
    """``evaluation_from_row`` for a row of ``RECORD_COLUMNS`` read by position."""
    return opened(_evaluation_from_values(values), seal)


def _evaluation_from_values(values: Sequence[Any]) -> Evaluation:
    """The list's path: about half the cost per row of reading each column by name, with
    the enums looked up in a dict instead of called.
    """
    (
        id_,
        code,
        language,
        status,
        created_at,
        updated_at,
        started_at,
        completed_at,
        runtime_ms,
        metadata,
        output,
        output_location,
        output_size,
        output_compressed,
        output_key,
        error,
        error_location,
        error_size,
        error_compressed,
        error_key,
        celery_task_id,
        retries,
        executor_id,
        container_id,
        exit_code,
        timeout,
        last_update,
        retry_message,
        final_failure,
        deleted_at,
        version,
        output_tail,
        error_tail,
    ) = values
    return Evaluation(
        id=id_,
        code=code,
        language=language,
        status=_STATUSES[status],
        created_at=created_at,
        updated_at=updated_at,
        started_at=started_at,
        completed_at=completed_at,
        runtime_ms=runtime_ms,
        metadata=metadata if metadata is not None else {},
        output=None
        if output_location is None
        else StoredPayload(
            _LOCATIONS[output_location],
            output_size or 0,
            output or "",
            bool(output_compressed),
            output_key,
            output_tail,
        ),
        error=None
        if error_location is None
        else StoredPayload(
            _LOCATIONS[error_location],
            error_size or 0,
            error or "",
            bool(error_compressed),
            error_key,
            error_tail,
        ),
        celery_task_id=celery_task_id,
        retries=retries,
        executor_id=executor_id,
        container_id=container_id,
        exit_code=exit_code,
        timeout=timeout,
        last_update=last_update,
        retry_message=retry_message,
        final_failure=final_failure,
        deleted_at=deleted_at,
        version=version,
    )


_PAYLOAD_FIELDS = ("output", "error")


def projection_columns(fields: frozenset[str]) -> list[str]:
    """The ``evaluations`` columns a projection reads, in a stable order (``id`` always:
    sealed values are bound to it)."""
    columns: list[str] = [] if "id" in fields else ["id"]
    for name in sorted(fields):
        if name in _PAYLOAD_FIELDS:
            columns += [name, f"{name}_location", f"{name}_size", f"{name}_compressed"]
            columns += [f"{name}_key", f"{name}_tail"]
        else:
            columns.append(name)
    return columns


def page_columns(fields: frozenset[str]) -> list[str]:
    """``projection_columns`` and the keyset cursor's: the last row's (created_at, id)."""
    names = projection_columns(fields)
    return names + [name for name in ("created_at", "id") if name not in names]


def evaluation_page(
    rows: Sequence[FetchedRow],
    limit: int,
    total: int | None,
    record: Callable[[FetchedRow], Evaluation],
) -> EvaluationPage:
    """The first ``limit`` rows of a fetch of one more; that one tells a next page follows."""
    limit = max(limit, 0)
    items = [record(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit and items:
        last = items[-1]
        next_cursor = ListCursor(created_at=last.created_at, id=last.id)
    return EvaluationPage(items=items, next_cursor=next_cursor, total=total)


def projected_page(
    rows: Sequence[Row],
    limit: int,
    total: int | None,
    fields: frozenset[str],
    seal: ColumnSeal = NO_COLUMN_SEAL,
) -> ProjectedPage:
    """As ``evaluation_page``, of rows holding ``page_columns(fields)``."""
    limit = max(limit, 0)
    items = [projection_from_row(row, fields, seal) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit and items:
        last = rows[limit - 1]
        next_cursor = ListCursor(created_at=last["created_at"], id=EvaluationId(last["id"]))
    return ProjectedPage(items=items, next_cursor=next_cursor, total=total)


def projection_from_row(
    row: Row, fields: frozenset[str], seal: ColumnSeal = NO_COLUMN_SEAL
) -> Projection:
    """Domain values of ``fields`` from a row holding ``projection_columns(fields)``."""
    values: Projection = {}
    sealed = sealed_row(row["id"])
    for name in fields:
        if name in _PAYLOAD_FIELDS:
            values[name] = _opened_payload(
                seal,
                sealed,
                name,
                _payload(
                    row[f"{name}_location"],
                    row[f"{name}_size"],
                    row[name],
                    row[f"{name}_compressed"],
                    row[f"{name}_key"],
                    row[f"{name}_tail"],
                ),
            )
        elif name in ("code", "retry_message"):
            values[name] = seal.open_optional(sealed, name, row[name])
        elif name == "id":
            values[name] = EvaluationId(row[name])
        elif name == "status":
            values[name] = EvaluationStatus(row[name])
        elif name == "metadata":
            metadata = dict(row[name] or {})
            values[name] = seal.open_metadata(sealed, metadata) if seal.metadata_keys else metadata
        else:
            values[name] = row[name]
    return values


def _payload_values(prefix: str, payload: StoredPayload | None) -> dict[str, Any]:
    if payload is None:
        return {
            prefix: None,
            f"{prefix}_location": None,
            f"{prefix}_size": None,
            f"{prefix}_compressed": False,
            f"{prefix}_key": None,
            f"{prefix}_tail": None,
        }
    return {
        prefix: payload.text,
        f"{prefix}_location": payload.location.value,
        f"{prefix}_size": payload.size,
        f"{prefix}_compressed": payload.compressed,
        f"{prefix}_key": payload.key,
        f"{prefix}_tail": payload.tail,
    }


def evaluation_values(evaluation: Evaluation, seal: ColumnSeal = NO_COLUMN_SEAL) -> dict[str, Any]:
    """Column values of every field the domain owns (``log_size`` is the log store's),
    the text ones sealed when ``seal`` seals."""
    values = _evaluation_values(evaluation)
    sealer = seal.row(sealed_row(evaluation.id))
    if sealer is None:
        return values
    for column in SEALED_COLUMNS:
        if values[column] is not None:
            values[column] = sealer.text(column, values[column])
    if seal.metadata_keys:
        values["metadata"] = seal.seal_metadata(sealer, values["metadata"])
    return values


def _evaluation_values(evaluation: Evaluation) -> dict[str, Any]:
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
        "exit_code": evaluation.exit_code,
        "timeout": evaluation.timeout,
        "last_update": evaluation.last_update,
        "retry_message": evaluation.retry_message,
        "final_failure": evaluation.final_failure,
        "deleted_at": evaluation.deleted_at,
        "version": evaluation.version,
    }
