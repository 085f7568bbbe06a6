from collections.abc import Callable

from application.ports.evaluation_maintenance import EvaluationMaintenance
from application.services.record_cache import RecordCache


class WarmCache:
    """Load the ``top`` most recently changed live records into the record cache.

    Fills are versioned like any read's, so warming never replaces a newer entry.
    """

    def __init__(self, maintenance: EvaluationMaintenance, record_cache: RecordCache) -> None:
        self._maintenance = maintenance
        self._record_cache = record_cache

    async def execute(self, top: int, on_record: Callable[[], None] | None = None) -> int:
        records = await self._maintenance.recently_updated(top)
        for evaluation in records:
            await self._record_cache.fill(evaluation)
            if on_record is not None:
                on_record()
        return len(records)
