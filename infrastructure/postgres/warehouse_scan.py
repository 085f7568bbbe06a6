"""``WarehouseScan`` on PostgreSQL through ADBC: the database shapes the rows, Arrow carries them.

One ``SELECT`` in the export's column order is streamed as Arrow record batches by the
ADBC PostgreSQL driver (binary ``COPY``), with no Python object per row: a million
evaluations leave the database in seconds where the row-by-row mapping took minutes
(docs/bench-export.md). The driver streams only a statement without bind parameters
(with them libpq holds the whole result in memory: 3.4 GB at a million rows), so the
scan's values are SQL literals: the cursor, checked to be hexadecimal, and the tenant and
the promoted keys, quoted on a connection that treats backslashes literally. Every
statement names its tenant (ADR 0032) and each connection sets it where row-level
security reads it. JSON text is
PostgreSQL's (``{"a": 1}``), not msgspec's (``{"a":1}``): the same values.
"""

import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import anyio.to_thread
import asyncpg
from adbc_driver_postgresql import StatementOptions

from application.ports.warehouse import RowBatch, Table, WarehouseScan
from application.warehouse_rows import MAX_PROMOTED, PROMOTE_SHARE
from domain.tenancy import TenantId
from infrastructure.postgres.pool import driver_dsn
from infrastructure.postgres.tenancy import begin, tenant_literal
from infrastructure.sql.tenancy import SETTING

SAMPLE = 2000
# The driver's batches (16 MiB by default): smaller ones keep the scan's peak memory low.
BATCH_BYTES = 4 * 1024 * 1024
BATCH_HINT = StatementOptions.BATCH_SIZE_HINT_BYTES.value
_CURSOR = re.compile(r"[0-9a-f]{1,16}-[0-9a-f]{1,16}")
_COLUMNS = """
SELECT id, {cursor} AS change_cursor, false AS deleted, code, language, status,
       created_at, updated_at, started_at, completed_at, last_update,
       runtime_ms::bigint AS runtime_ms, exit_code::bigint AS exit_code, executor_id,
       container_id, celery_task_id, retries::bigint AS retries, version::bigint AS version,
       output, output_size, output_location,
       CASE WHEN output_location IS NULL THEN NULL ELSE output_location <> 'inline' END
         AS output_truncated,
       error, error_size, error_location,
       CASE WHEN error_location IS NULL THEN NULL ELSE error_location <> 'inline' END
         AS error_truncated,
       metadata::text AS metadata{promoted},
       (created_at AT TIME ZONE 'UTC')::date AS date
"""
_EVERY = """FROM evaluations WHERE tenant_id = {tenant} AND deleted_at IS NULL
ORDER BY created_at DESC, id DESC"""
# Ids and cursors as one comma-separated text each: neither can hold a comma.
_CHANGED = """
FROM evaluations JOIN unnest(string_to_array($1, ','), string_to_array($2, ','))
  AS changed(changed_id, changed_cursor) ON evaluations.id = changed.changed_id
WHERE tenant_id = {tenant} AND deleted_at IS NULL
"""
# The keys of the newest records: the same sample the row-by-row scans take.
_COMMON_KEYS = """
SELECT key FROM (
  SELECT metadata FROM evaluations WHERE tenant_id = $4 AND deleted_at IS NULL
  ORDER BY created_at DESC, id DESC LIMIT $1
) AS newest, jsonb_object_keys(newest.metadata) AS key
GROUP BY key HAVING count(*) >= greatest(1, ceil(
  (SELECT count(*) FROM (
     SELECT 1 FROM evaluations WHERE tenant_id = $4 AND deleted_at IS NULL LIMIT $1
   ) AS n) * $2::float8))
ORDER BY key LIMIT $3
"""


# The timelines of live evaluations, in the columns of ``EventRow`` and ``LogRow``.
_TIMELINES = {
    Table.EVENTS: """
SELECT e.evaluation_id, e.event_id, {cursor} AS change_cursor, e.event_type, e.timestamp,
       e.message, e.metadata::text AS metadata, (e.timestamp AT TIME ZONE 'UTC')::date AS date
FROM evaluation_events AS e
JOIN evaluations AS v ON v.tenant_id = e.tenant_id AND v.id = e.evaluation_id {changed}
WHERE e.tenant_id = {tenant} AND v.deleted_at IS NULL ORDER BY e.id
""",
    Table.LOGS: """
SELECT c.evaluation_id, c.start_offset AS byte_offset, {cursor} AS change_cursor,
       octet_length(c.content)::bigint AS size, c.content, c.created_at,
       (c.created_at AT TIME ZONE 'UTC')::date AS date
FROM log_chunks AS c
JOIN evaluations AS v ON v.tenant_id = c.tenant_id AND v.id = c.evaluation_id {changed}
WHERE c.tenant_id = {tenant} AND v.deleted_at IS NULL ORDER BY c.id
""",
}
_CHANGED_IDS = """JOIN unnest(string_to_array($1, ','), string_to_array($2, ','))
  AS changed(changed_id, changed_cursor) ON v.id = changed.changed_id"""


def _literal(text: str) -> str:
    """``text`` as a standard SQL string literal (``standard_conforming_strings`` is on)."""
    if "\x00" in text:
        raise ValueError("a NUL cannot be in a PostgreSQL string")
    return "'" + text.replace("'", "''") + "'"


def _select(promoted: Sequence[str], cursor: str, source: str, tenant: TenantId) -> str:
    """The export's columns from ``tenant``'s rows of ``source``; each promoted key a
    literal, aliased by position."""
    keys = [_literal(key) for key in promoted]
    columns = "".join(
        f", CASE jsonb_typeof(metadata -> {key}) WHEN 'string' THEN metadata ->> {key} "
        f"WHEN 'null' THEN NULL ELSE (metadata -> {key})::text END AS promoted_{n}"
        for n, key in enumerate(keys)
    )
    return _COLUMNS.format(cursor=cursor, promoted=columns) + source.format(tenant=_literal(tenant))


class PgWarehouseScan(WarehouseScan):
    """A connection of its own per scan (not the request pool's): one long ``COPY``."""

    def __init__(self, database_url: str) -> None:
        self._dsn = driver_dsn(database_url)

    async def common_keys(self, tenant: TenantId) -> list[str]:
        connection = await asyncpg.connect(self._dsn)
        try:
            await connection.execute(begin(tenant))
            rows = await connection.fetch(_COMMON_KEYS, SAMPLE, PROMOTE_SHARE, MAX_PROMOTED, tenant)
            await connection.execute("COMMIT")
        finally:
            await connection.close()
        return [str(row["key"]) for row in rows]

    async def batches(
        self, tenant: TenantId, cursor: str, promoted: Sequence[str]
    ) -> AsyncIterator[RowBatch]:
        sql = _select(promoted, _cursor_literal(cursor), _EVERY, tenant)
        async for batch in self._stream(tenant, sql):
            yield _named(batch, promoted)

    def timeline(self, tenant: TenantId, table: Table, cursor: str) -> AsyncIterator[RowBatch]:
        sql = _TIMELINES[table].format(
            cursor=_cursor_literal(cursor), changed="", tenant=_literal(tenant)
        )
        return self._stream(tenant, sql)

    async def timeline_of(
        self, tenant: TenantId, table: Table, changed: Mapping[str, str]
    ) -> RowBatch:
        sql = _TIMELINES[table].format(
            cursor="changed_cursor", changed=_CHANGED_IDS, tenant=_literal(tenant)
        )
        parameters = (",".join(changed), ",".join(changed.values()))
        with self._reader(tenant, sql, parameters) as reader:
            found = await anyio.to_thread.run_sync(reader.read_all)
        return found.combine_chunks().to_batches()[0] if found.num_rows else []

    async def _stream(self, tenant: TenantId, sql: str) -> AsyncIterator[Any]:
        with self._reader(tenant, sql, ()) as reader:
            while (batch := await anyio.to_thread.run_sync(_next, reader)) is not None:
                yield batch

    async def current(
        self, tenant: TenantId, changed: Mapping[str, str], promoted: Sequence[str]
    ) -> tuple[RowBatch, set[str]]:
        sql = _select(promoted, "changed_cursor", _CHANGED, tenant)
        parameters = (",".join(changed), ",".join(changed.values()))
        with self._reader(tenant, sql, parameters) as reader:
            found = await anyio.to_thread.run_sync(reader.read_all)
        table = _named(found.combine_chunks().to_batches()[0], promoted) if found.num_rows else []
        return table, set(found["id"].to_pylist())

    @contextmanager
    def _reader(self, tenant: TenantId, sql: str, parameters: tuple[str, ...]) -> Iterator[Any]:
        """``sql``'s rows as Arrow batches, read under ``tenant``'s row-level security.

        The setting is the session's (``is_local`` false): the connection is the scan's own
        and closed after it, and a ``COPY`` cannot set it itself as ``scoped`` does.
        """
        with adbc.connect(self._dsn) as connection, connection.cursor() as statement:
            statement.execute("SET standard_conforming_strings = on")
            statement.execute(f"SELECT set_config('{SETTING}', {tenant_literal(tenant)}, false)")
            statement.adbc_statement.set_options(**{BATCH_HINT: str(BATCH_BYTES)})
            statement.execute(sql, parameters=parameters or None)
            yield statement.fetch_record_batch()


def _cursor_literal(cursor: str) -> str:
    if not _CURSOR.fullmatch(cursor):
        raise ValueError(f"not a change cursor: {cursor!r}")
    return f"'{cursor}'::text"


def _next(reader: Any) -> Any:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _named(batch: Any, promoted: Sequence[str]) -> Any:
    """``batch`` with its ``promoted_<n>`` columns named ``metadata_<key>``, in order."""
    names = iter("metadata_" + key for key in promoted)
    columns = batch.schema.names
    return batch.rename_columns(
        [next(names) if name.startswith("promoted_") else name for name in columns]
    )
