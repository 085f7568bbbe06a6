from collections.abc import Callable
from dataclasses import dataclass

from application.ports.evaluation_maintenance import EvaluationMaintenance
from application.services.record_cache import RecordCache
from domain.tenancy import TenantId


@dataclass(frozen=True, slots=True)
class WarmCache:
    """Load the ``top`` most recently changed live records into the record cache.

    Fills are versioned like any read's, so warming never replaces a newer entry, and
    marked as warming's, so the cache can tell the hits they serve.
    ``stop`` is asked before each record: once it answers True the warm-up ends there,
    never in the middle of a fill.
    """

    maintenance: EvaluationMaintenance
    record_cache: RecordCache
    tenant: TenantId

    async def execute(
        self,
        top: int,
        on_record: Callable[[], None] | None = None,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """The number of records loaded (fewer than found when stopped)."""
        records = await self.maintenance.recently_updated(top)
        loaded = 0
        for evaluation in records:
            if stop is not None and stop():
                break
            await self.record_cache.fill(self.tenant, evaluation, warm=True)
            loaded += 1
            if on_record is not None:
                on_record()
        return loaded
