import builtins
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

import msgspec

from domain.tenancy import TenantId

# The export's layout version: a reader that knows it knows every column below.
EXPORT_FORMAT = 1


class EvaluationRow(msgspec.Struct, frozen=True, kw_only=True):
    """One evaluation as the warehouse holds it: a flat row, typed timestamps.

    A run writes a row for every evaluation it exports; a later (incremental) run writes
    another row for each one that changed, and a tombstone (``deleted``, only ``id``,
    ``date`` and the change's cursor set) for each one deleted. The newest row of an id
    (by ``change_cursor``, a full export's rows carrying the cursor it started from) is
    its state. ``output``/``error`` hold the stored text: the whole payload when inline,
    else its preview (``*_truncated``; ``*_location`` says where the rest is).
    """

    id: str
    date: date  # the partition: the creation day (UTC), or the deletion's for a tombstone
    change_cursor: str
    deleted: bool = False
    code: str | None = None
    language: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_update: datetime | None = None
    runtime_ms: int | None = None
    exit_code: int | None = None
    executor_id: str | None = None
    container_id: str | None = None
    celery_task_id: str | None = None
    retries: int | None = None
    version: int | None = None
    output: str | None = None
    output_size: int | None = None
    output_location: str | None = None
    output_truncated: bool | None = None
    error: str | None = None
    error_size: int | None = None
    error_location: str | None = None
    error_truncated: bool | None = None
    metadata: str | None = None  # the whole metadata, as JSON text
    # Common metadata keys as columns of their own (``metadata_<key>``), as text.
    promoted: dict[str, str | None] = msgspec.field(default_factory=dict)


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    """One timeline event. Events never change: ``(evaluation_id, event_id)`` is the key, and
    a row written again by a later run (with a later ``change_cursor``) is the same event."""

    evaluation_id: str
    event_id: str
    date: date  # the partition: the event's day (UTC)
    change_cursor: str
    event_type: str
    timestamp: datetime
    message: str | None = None
    metadata: str = "{}"  # as JSON text


class LogRow(msgspec.Struct, frozen=True, kw_only=True):
    """One appended piece of an evaluation's log, at ``byte_offset`` of it (UTF-8 bytes).
    ``(evaluation_id, byte_offset)`` is the key; ordered by it, the pieces are the log."""

    evaluation_id: str
    byte_offset: int
    date: date  # the partition: the day it was appended (UTC)
    change_cursor: str
    size: int  # bytes
    content: str
    created_at: datetime


class Table(StrEnum):
    """The tables of the export: each under its own directory (``<table>/date=…/``)."""

    EVALUATIONS = "evaluations"
    EVENTS = "events"
    LOGS = "logs"


TIMELINES = (Table.EVENTS, Table.LOGS)


class ExportManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What one run wrote and how far it got; the next run starts after ``cursor``."""

    format: int = EXPORT_FORMAT
    run: str
    started_at: datetime
    finished_at: datetime
    since: str | None  # the cursor this run started after; None for a full export
    cursor: str  # the feed position every change up to which is in the export
    rows: int  # evaluation rows (tombstones apart)
    tombstones: int
    files: builtins.list[str]
    metadata_columns: builtins.list[str]
    # The tables this run wrote; an incremental run continues the same ones.
    tables: builtins.list[str] = msgspec.field(default_factory=lambda: [Table.EVALUATIONS.value])
    events: int = 0  # event rows
    logs: int = 0  # log rows


class ColumnBatch(Protocol):
    """Rows the database shaped into columns itself (an Arrow record batch, on PostgreSQL):
    the schema of ``EvaluationRow`` with ``promoted`` as ``metadata_<key>`` columns."""

    @property
    def num_rows(self) -> int: ...


WarehouseRow = EvaluationRow | EventRow | LogRow
RowBatch = Sequence[WarehouseRow] | ColumnBatch


def rows_in(batch: RowBatch) -> int:
    return len(batch) if isinstance(batch, Sequence) else batch.num_rows


class WarehouseScan(Protocol):
    """One tenant's live evaluations as warehouse rows, newest first, a batch at a time.

    Every call names its tenant (ADR 0032): an export is of one tenant, and the
    PostgreSQL scan reads on a connection of its own, outside any request's scope.
    """

    @abstractmethod
    async def common_keys(self, tenant: TenantId) -> builtins.list[str]:
        """The metadata keys common enough for a column of their own (the newest records')."""

    @abstractmethod
    def batches(
        self, tenant: TenantId, cursor: str, promoted: Sequence[str]
    ) -> AsyncIterator[RowBatch]:
        """The rows, each with ``change_cursor`` = ``cursor``; memory stays bounded."""

    @abstractmethod
    async def current(
        self, tenant: TenantId, changed: Mapping[str, str], promoted: Sequence[str]
    ) -> tuple[RowBatch, builtins.set[str]]:
        """The rows of the ids in ``changed`` that are live, each with its cursor there,
        and the ids found (one that is not is gone: a tombstone)."""

    @abstractmethod
    def timeline(self, tenant: TenantId, table: Table, cursor: str) -> AsyncIterator[RowBatch]:
        """Every event (``EVENTS``) or log piece (``LOGS``) of the live evaluations, each
        with ``change_cursor`` = ``cursor``; memory stays bounded."""

    @abstractmethod
    async def timeline_of(
        self, tenant: TenantId, table: Table, changed: Mapping[str, str]
    ) -> RowBatch:
        """Every event or log piece of the live evaluations in ``changed``, each with the
        cursor there (a whole timeline: its rows are keyed, so a repeat is harmless)."""


class WarehouseSink(Protocol):
    """Where a run writes: Parquet files under a directory or an S3 prefix."""

    @abstractmethod
    async def last_manifest(self) -> ExportManifest | None:
        """The newest finished run's manifest, if any run finished here."""

    @abstractmethod
    async def write(self, table: Table, rows: RowBatch, metadata_columns: Sequence[str]) -> None:
        """Append ``rows`` of ``table`` to their partitions (files stay open until ``finish``);
        ``metadata_columns`` shape the evaluations table only."""

    @abstractmethod
    async def finish(self, manifest: ExportManifest) -> builtins.list[str]:
        """Close every file, then write ``manifest`` with the files' names; those names."""

    @abstractmethod
    async def abort(self) -> None:
        """Close and remove what this run wrote (its manifest was never written)."""
