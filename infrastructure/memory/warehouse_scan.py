"""``WarehouseScan`` over the memory records: the shared row mapping, newest first."""

import itertools
from collections.abc import AsyncIterator, Mapping, Sequence

from application.ports.warehouse import RowBatch, Table, WarehouseRow, WarehouseScan
from application.warehouse_rows import common_keys, event_row, log_row, row_of
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from infrastructure.memory.evaluations import MemoryDatabase

SAMPLE = 2000
BATCH = 2000


class MemoryWarehouseScan(WarehouseScan):
    def __init__(self, database: MemoryDatabase) -> None:
        self._database = database

    def _newest_first(self, db: MemoryDatabase) -> list[Evaluation]:
        return sorted(db.live_records(), key=lambda e: (e.created_at, e.id), reverse=True)

    async def common_keys(self, tenant: TenantId) -> list[str]:
        return common_keys(self._newest_first(self._database.of(tenant))[:SAMPLE])

    async def batches(
        self, tenant: TenantId, cursor: str, promoted: Sequence[str]
    ) -> AsyncIterator[RowBatch]:
        records = self._newest_first(self._database.of(tenant))
        for start in range(0, len(records), BATCH):
            yield [row_of(e, cursor, promoted) for e in records[start : start + BATCH]]

    async def current(
        self, tenant: TenantId, changed: Mapping[str, str], promoted: Sequence[str]
    ) -> tuple[RowBatch, set[str]]:
        db = self._database.of(tenant)
        rows = [
            row_of(found, cursor, promoted)
            for evaluation_id, cursor in changed.items()
            if (found := db.live(EvaluationId(evaluation_id))) is not None
        ]
        return rows, {row.id for row in rows}

    @staticmethod
    def _timeline(
        db: MemoryDatabase, table: Table, evaluation_id: EvaluationId, cursor: str
    ) -> list[WarehouseRow]:
        if db.live(evaluation_id) is None:
            return []
        if table is Table.EVENTS:
            events = sorted(db.events.get(evaluation_id, []), key=lambda e: e.timestamp)
            return [event_row(event, cursor) for event in events]
        return [log_row(chunk, cursor) for chunk in db.log_chunks.get(evaluation_id, [])]

    async def timeline(
        self, tenant: TenantId, table: Table, cursor: str
    ) -> AsyncIterator[RowBatch]:
        db = self._database.of(tenant)
        ids = list(db.events if table is Table.EVENTS else db.log_chunks)
        rows = itertools.chain.from_iterable(self._timeline(db, table, i, cursor) for i in ids)
        while batch := list(itertools.islice(rows, BATCH)):
            yield batch

    async def timeline_of(
        self, tenant: TenantId, table: Table, changed: Mapping[str, str]
    ) -> RowBatch:
        db = self._database.of(tenant)
        return [
            row
            for evaluation_id, cursor in changed.items()
            for row in self._timeline(db, table, EvaluationId(evaluation_id), cursor)
        ]
