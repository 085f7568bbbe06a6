"""The tables' Parquet schemas: one place that names every column's type.

``date`` is not a column of the files: it is the Hive partition in their path
(``date=YYYY-MM-DD/``), which DuckDB, pandas and Athena read back as a column.
"""

from collections.abc import Sequence
from typing import Any

import msgspec
import pyarrow as pa

from application.ports.warehouse import (
    EvaluationRow,
    EventRow,
    LogRow,
    RowBatch,
    Table,
    WarehouseRow,
)

TIMESTAMP = pa.timestamp("us", tz="UTC")
_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "change_cursor": pa.string(),
    "deleted": pa.bool_(),
    "code": pa.string(),
    "language": pa.string(),
    "status": pa.string(),
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
    "started_at": TIMESTAMP,
    "completed_at": TIMESTAMP,
    "last_update": TIMESTAMP,
    "runtime_ms": pa.int64(),
    "exit_code": pa.int64(),
    "executor_id": pa.string(),
    "container_id": pa.string(),
    "celery_task_id": pa.string(),
    "retries": pa.int64(),
    "version": pa.int64(),
    "output": pa.string(),
    "output_size": pa.int64(),
    "output_location": pa.string(),
    "output_truncated": pa.bool_(),
    "error": pa.string(),
    "error_size": pa.int64(),
    "error_location": pa.string(),
    "error_truncated": pa.bool_(),
    "metadata": pa.string(),
}
_EVENT_TYPES: dict[str, pa.DataType] = {
    "evaluation_id": pa.string(),
    "event_id": pa.string(),
    "change_cursor": pa.string(),
    "event_type": pa.string(),
    "timestamp": TIMESTAMP,
    "message": pa.string(),
    "metadata": pa.string(),
}
_LOG_TYPES: dict[str, pa.DataType] = {
    "evaluation_id": pa.string(),
    "byte_offset": pa.int64(),
    "change_cursor": pa.string(),
    "size": pa.int64(),
    "content": pa.string(),
    "created_at": TIMESTAMP,
}
_COLUMNS = {Table.EVALUATIONS: _TYPES, Table.EVENTS: _EVENT_TYPES, Table.LOGS: _LOG_TYPES}
for _row, _kind, _skipped in (
    (EvaluationRow, Table.EVALUATIONS, {"date", "promoted"}),
    (EventRow, Table.EVENTS, {"date"}),
    (LogRow, Table.LOGS, {"date"}),
):
    if set(_COLUMNS[_kind]) | _skipped != set(_row.__struct_fields__):
        raise RuntimeError(f"the Parquet schema and {_row.__name__} name different columns")

PROMOTED_PREFIX = "metadata_"


def schema(kind: Table, promoted: Sequence[str] = ()) -> pa.Schema:
    """A table's file schema: its fixed columns, then (evaluations) a column per promoted key."""
    fields = [pa.field(name, type_) for name, type_ in _COLUMNS[kind].items()]
    if kind is Table.EVALUATIONS:
        fields += [pa.field(PROMOTED_PREFIX + key, pa.string()) for key in promoted]
    return pa.schema(fields)


def arrow_table(kind: Table, rows: Sequence[WarehouseRow], promoted: Sequence[str]) -> pa.Table:
    """``rows`` of table ``kind`` as one Arrow table of ``schema(kind, promoted)``."""
    names = _COLUMNS[kind]
    columns: dict[str, list[Any]] = {name: [getattr(row, name) for row in rows] for name in names}
    if kind is Table.EVALUATIONS:
        for key in promoted:
            columns[PROMOTED_PREFIX + key] = [
                row.promoted.get(key) for row in rows if isinstance(row, EvaluationRow)
            ]
    return pa.Table.from_pydict(columns, schema=schema(kind, promoted))


def conformed(kind: Table, rows: RowBatch | pa.Table, promoted: Sequence[str]) -> pa.Table:
    """Rows as a table of the file schema: mapped from structs, or the database's Arrow
    columns cast (``date``, the partition, left out)."""
    if isinstance(rows, Sequence):
        return arrow_table(kind, rows, promoted)
    target = schema(kind, promoted)
    columns = rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows])
    return columns.select(target.names).cast(target)


def encode_manifest(manifest: msgspec.Struct) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest))
