"""``WarehouseScan`` over the memory records: the shared row mapping, newest first."""

from collections.abc import AsyncIterator, Mapping, Sequence

from application.ports.warehouse import RowBatch, WarehouseScan
from application.warehouse_rows import common_keys, row_of
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from infrastructure.memory.evaluations import MemoryDatabase

SAMPLE = 2000
BATCH = 2000


class MemoryWarehouseScan(WarehouseScan):
    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    def _newest_first(self) -> list[Evaluation]:
        return sorted(self._db.live_records(), key=lambda e: (e.created_at, e.id), reverse=True)

    async def common_keys(self) -> list[str]:
        return common_keys(self._newest_first()[:SAMPLE])

    async def batches(self, cursor: str, promoted: Sequence[str]) -> AsyncIterator[RowBatch]:
        records = self._newest_first()
        for start in range(0, len(records), BATCH):
            yield [row_of(e, cursor, promoted) for e in records[start : start + BATCH]]

    async def current(
        self, changed: Mapping[str, str], promoted: Sequence[str]
    ) -> tuple[RowBatch, set[str]]:
        rows = [
            row_of(found, cursor, promoted)
            for evaluation_id, cursor in changed.items()
            if (found := self._db.live(EvaluationId(evaluation_id))) is not None
        ]
        return rows, {row.id for row in rows}
