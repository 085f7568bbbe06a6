"""Warehouse export: every evaluation as a flat row, then only what changed since.

A full run notes the feed's position before it reads anything, then writes every live
evaluation page by page (newest first, so a day's partition is written in one go and
closed). An incremental run reads the change feed after the last run's cursor and
writes, for each evaluation that changed, its current row, or a tombstone when it is
gone. A change committed while a run reads lands after its cursor, so the next run
writes it again: a row may appear twice, never be missed, and the newest row of an id
(by ``change_cursor``) is its state.

The events and logs tables (when asked for) follow the same runs: a full run writes every
event and log piece of the live evaluations, an incremental one the whole timeline of each
evaluation that got an event or a log piece since; their rows are keyed (``event_id``,
``byte_offset``), so a repeat is the same row again.
"""

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
import msgspec

from application.errors import InvalidRequestError
from application.ports.change_feed import ChangeFeed, ChangeQuery
from application.ports.clock import Clock
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.warehouse import (
    TIMELINES,
    EvaluationRow,
    ExportManifest,
    RowBatch,
    Table,
    WarehouseScan,
    WarehouseSink,
    rows_in,
)
from application.queries import EvaluationFilter, EvaluationQuery, check_filter_text
from application.services.payloads import PayloadStore
from application.warehouse_rows import common_keys, row_of, sortable, tombstone
from domain.changes import START, Change, ChangeCursor, ChangeKind
from domain.evaluation import Evaluation
from domain.tenancy import TenantId

Progress = Callable[[int], None]
Stop = Callable[[], bool]


class ExportStoppedError(Exception):
    """A full run asked to stop before its end: its files are removed, nothing is kept."""


_GONE = frozenset({ChangeKind.DELETED, ChangeKind.PURGED})
# The change that adds to a timeline table.
_GROWS = {Table.EVENTS: ChangeKind.EVENT_RECORDED, Table.LOGS: ChangeKind.LOG_APPENDED}


class _Tally(msgspec.Struct):
    rows: int = 0
    tombstones: int = 0
    events: int = 0
    logs: int = 0

    def add(self, table: Table, count: int) -> None:
        if table is Table.EVALUATIONS:
            self.rows += count
        elif table is Table.EVENTS:
            self.events += count
        else:
            self.logs += count

    @property
    def total(self) -> int:
        return self.rows + self.tombstones + self.events + self.logs


def _tables_of(
    asked: frozenset[Table] | None, since: ChangeCursor | None, last: ExportManifest | None
) -> list[Table]:
    """The tables of a run, in a fixed order; an incremental one continues the last run's."""
    before = None if last is None else frozenset(Table(name) for name in last.tables)
    chosen: frozenset[Table] = asked or frozenset({Table.EVALUATIONS})
    if asked is None and since is not None and before is not None:
        chosen = before
    if since is not None and before is not None and not chosen <= before:
        missing = ", ".join(sorted(chosen - before))
        raise InvalidRequestError(
            "tables",
            f"the last run here did not export {missing}: an incremental run would miss "
            "what came before its cursor; run a full export with these tables first",
        )
    return [table for table in Table if table in chosen]


@dataclass(frozen=True)
class RowDownload:
    """The table, its promoted metadata columns (evaluations), and the rows in pages."""

    table: Table
    columns: list[str]
    rows: AsyncIterator[RowBatch]


@dataclass(frozen=True, slots=True)
class ExportWarehouse:
    """One run of the warehouse export of ``tenant`` into ``sink``: full, or after a cursor."""

    queries: EvaluationQueries
    feed: ChangeFeed
    clock: Clock
    payloads: PayloadStore
    scan: WarehouseScan
    tenant: TenantId

    async def execute(
        self,
        sink: WarehouseSink,
        since: ChangeCursor | None,
        progress: Progress = lambda _: None,
        batch: int = 2000,
        stop: Stop = lambda: False,
        tables: frozenset[Table] | None = None,
    ) -> ExportManifest:
        """Write the run, then its manifest; a run that fails leaves no files behind.

        ``tables``: what to write (default: the evaluations, or for an incremental run the
        tables of the run it continues). ``stop`` is asked between pages: a full run then
        ends with ``ExportStoppedError`` (its files removed); an incremental one ends with
        what it wrote so far, and its manifest's cursor says where the next run goes on.
        """
        started = self.clock.now()
        last = await sink.last_manifest()
        run_tables = _tables_of(tables, since, last)
        columns = None if last is None else last.metadata_columns
        tally = _Tally()
        try:
            if since is None:
                reached, columns = await self._full(
                    sink, run_tables, columns, tally, progress, stop
                )
            else:
                columns = columns or []
                reached = await self._changed(
                    sink, since, run_tables, columns, tally, progress, batch, stop
                )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await sink.abort()
            raise
        manifest = ExportManifest(
            run=f"{started:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}",
            started_at=started,
            finished_at=self.clock.now(),
            since=None if since is None else since.token(),
            cursor=reached.token(),
            rows=tally.rows,
            tombstones=tally.tombstones,
            files=[],
            metadata_columns=columns,
            tables=[table.value for table in run_tables],
            events=tally.events,
            logs=tally.logs,
        )
        files = await sink.finish(manifest)
        return msgspec.structs.replace(manifest, files=files)

    async def _full(
        self,
        sink: WarehouseSink,
        tables: list[Table],
        columns: list[str] | None,
        tally: _Tally,
        progress: Progress,
        stop: Stop,
    ) -> tuple[ChangeCursor, list[str]]:
        start = await self.feed.latest() or START
        cursor = sortable(start)
        if columns is None:
            columns = (
                await self.scan.common_keys(self.tenant) if Table.EVALUATIONS in tables else []
            )
        for table in tables:
            batches = (
                self.scan.batches(self.tenant, cursor, columns)
                if table is Table.EVALUATIONS
                else self.scan.timeline(self.tenant, table, cursor)
            )
            async for batch in batches:
                await sink.write(table, batch, columns)
                tally.add(table, rows_in(batch))
                progress(tally.total)
                if stop():
                    raise ExportStoppedError("the full export was asked to stop")
        return start, columns

    async def _pages(
        self, criteria: EvaluationFilter, batch: int
    ) -> AsyncIterator[list[Evaluation]]:
        """Live evaluations matching ``criteria``, newest first, a page at a time."""
        page = await self.queries.list(EvaluationQuery(filter=criteria, limit=batch))
        while page.items:
            yield page.items
            if page.next_cursor is None:
                return
            query = EvaluationQuery(filter=criteria, limit=batch, cursor=page.next_cursor)
            page = await self.queries.list(query)

    async def download(
        self, criteria: EvaluationFilter, *, whole_payloads: bool, batch: int = 1000
    ) -> "RowDownload":
        """The rows of the evaluations ``criteria`` picks, for one file streamed as it goes.

        With ``whole_payloads`` the output and error are the whole texts, read from
        wherever they live; else what the record stores (the preview of a large one).
        """
        check_filter_text(criteria)
        cursor = sortable(await self.feed.latest() or START)
        first = await self.queries.list(EvaluationQuery(filter=criteria, limit=batch))
        columns = common_keys(first.items)

        async def rows() -> AsyncIterator[RowBatch]:
            async for page in self._pages(criteria, batch):
                found = [row_of(e, cursor, columns) for e in page]
                if whole_payloads:
                    found = [await self._whole(row, e) for row, e in zip(found, page, strict=True)]
                yield found

        return RowDownload(table=Table.EVALUATIONS, columns=columns, rows=rows())

    async def download_timeline(
        self, table: Table, criteria: EvaluationFilter, batch: int = 500
    ) -> RowDownload:
        """Every event (or log piece) of the evaluations ``criteria`` picks, a page of
        evaluations at a time (newest first; each one's rows in the order they were added)."""
        check_filter_text(criteria)
        cursor = sortable(await self.feed.latest() or START)

        async def rows() -> AsyncIterator[RowBatch]:
            async for page in self._pages(criteria, batch):
                yield await self.scan.timeline_of(self.tenant, table, {e.id: cursor for e in page})

        return RowDownload(table=table, columns=[], rows=rows())

    async def _whole(self, row: EvaluationRow, evaluation: Evaluation) -> EvaluationRow:
        if not (row.output_truncated or row.error_truncated):
            return row
        return msgspec.structs.replace(
            row,
            output=await self.payloads.read_text(evaluation.output),
            error=await self.payloads.read_text(evaluation.error),
            output_truncated=False if row.output_truncated is not None else None,
            error_truncated=False if row.error_truncated is not None else None,
        )

    async def _changed(
        self,
        sink: WarehouseSink,
        since: ChangeCursor,
        tables: list[Table],
        columns: list[str],
        tally: _Tally,
        progress: Progress,
        batch: int,
        stop: Stop,
    ) -> ChangeCursor:
        reached = since
        while True:
            page = await self.feed.read(ChangeQuery(after=reached, limit=batch))
            if page.reached is None:
                return reached
            if Table.EVALUATIONS in tables:
                await self._changed_records(sink, page.changes, columns, tally)
            for table in TIMELINES:
                if table in tables:
                    await self._changed_timelines(sink, table, page.changes, tally)
            progress(tally.total)
            reached = page.reached
            if not page.full or stop():
                return reached

    async def _changed_records(
        self, sink: WarehouseSink, changes: list[Change], columns: list[str], tally: _Tally
    ) -> None:
        last: dict[str, Change] = {change.evaluation_id: change for change in changes}
        wanted = {
            evaluation_id: sortable(change.cursor)
            for evaluation_id, change in last.items()
            if change.kind not in _GONE
        }
        found: set[str] = set()
        if wanted:
            rows, found = await self.scan.current(self.tenant, wanted, columns)
            await sink.write(Table.EVALUATIONS, rows, columns)
            tally.rows += len(found)
        gone = [
            tombstone(change, sortable(change.cursor))
            for evaluation_id, change in last.items()
            if evaluation_id not in found
        ]
        if gone:
            await sink.write(Table.EVALUATIONS, gone, columns)
            tally.tombstones += len(gone)

    async def _changed_timelines(
        self, sink: WarehouseSink, table: Table, changes: list[Change], tally: _Tally
    ) -> None:
        grown = {
            change.evaluation_id: sortable(change.cursor)
            for change in changes
            if change.kind is _GROWS[table]
        }
        if grown:
            rows = await self.scan.timeline_of(self.tenant, table, grown)
            await sink.write(table, rows, [])
            tally.add(table, rows_in(rows))
