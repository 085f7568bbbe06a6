"""The evaluations table's Parquet schema: one place that names every column's type.

``date`` is not a column of the files: it is the Hive partition in their path
(``date=YYYY-MM-DD/``), which DuckDB, pandas and Athena read back as a column.
"""

from collections.abc import Sequence
from typing import Any

import msgspec
import pyarrow as pa

from application.ports.warehouse import EvaluationRow

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
_SKIPPED = {"date", "promoted"}
if set(_TYPES) | _SKIPPED != set(EvaluationRow.__struct_fields__):
    raise RuntimeError("the Parquet schema and EvaluationRow name different columns")

PROMOTED_PREFIX = "metadata_"


def schema(promoted: Sequence[str]) -> pa.Schema:
    """The file schema: the fixed columns, then one text column per promoted key."""
    fields = [pa.field(name, kind) for name, kind in _TYPES.items()]
    fields += [pa.field(PROMOTED_PREFIX + key, pa.string()) for key in promoted]
    return pa.schema(fields)


def table(rows: Sequence[EvaluationRow], promoted: Sequence[str]) -> pa.Table:
    """``rows`` as one Arrow table of ``schema(promoted)``."""
    columns: dict[str, list[Any]] = {name: [getattr(row, name) for row in rows] for name in _TYPES}
    for key in promoted:
        columns[PROMOTED_PREFIX + key] = [row.promoted.get(key) for row in rows]
    return pa.Table.from_pydict(columns, schema=schema(promoted))


def encode_manifest(manifest: msgspec.Struct) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest))
