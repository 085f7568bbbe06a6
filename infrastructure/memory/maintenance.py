"""``EvaluationMaintenance`` over a ``MemoryDatabase``: same order and semantics as SQL."""

import builtins
import copy
from collections.abc import Sequence

from application.ports.evaluation_maintenance import (
    EvaluationMaintenance,
    PurgeCursor,
    PurgedRows,
    PurgeSelection,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from infrastructure.memory.evaluations import MemoryDatabase


class MemoryEvaluationMaintenance(EvaluationMaintenance):
    def __init__(self, database: MemoryDatabase, tenant: TenantId) -> None:
        self._db = database.of(tenant)

    async def purge_candidates(
        self, selection: PurgeSelection, limit: int, after: PurgeCursor | None = None
    ) -> builtins.list[Evaluation]:
        matching = sorted(
            (e for e in self._db.evaluations.values() if selection.matches(e)),
            key=lambda e: (e.updated_at, e.id),
        )
        if after is not None:
            matching = [e for e in matching if (e.updated_at, e.id) > (after.updated_at, after.id)]
        return [copy.deepcopy(e) for e in matching[: max(limit, 0)]]

    async def purge(
        self, evaluation_ids: Sequence[EvaluationId], selection: PurgeSelection
    ) -> PurgedRows:
        db = self._db
        purged: builtins.list[EvaluationId] = []
        events = chunks = 0
        async with db.lock:
            for evaluation_id in dict.fromkeys(evaluation_ids):
                evaluation = db.evaluations.get(evaluation_id)
                if evaluation is None or not selection.matches(evaluation):
                    continue
                del db.evaluations[evaluation_id]
                events += len(db.events.pop(evaluation_id, []))
                chunks += len(db.log_chunks.pop(evaluation_id, []))
                db.log_sizes.pop(evaluation_id, None)
                purged.append(evaluation_id)
        return PurgedRows(evaluation_ids=purged, events=events, log_chunks=chunks)

    async def scrub(self) -> None:
        pass  # a removed record is gone from memory with its last reference

    async def recently_updated(self, limit: int) -> builtins.list[Evaluation]:
        live = sorted(self._db.live_records(), key=lambda e: (e.updated_at, e.id), reverse=True)
        return [copy.deepcopy(e) for e in live[: max(limit, 0)]]
