"""A record read that needs nothing of a request: the cache's copy, when the journal
holds no write of the record that the copy could be missing."""

from dataclasses import dataclass

from application.ports.journal import Journal
from application.services.record_cache import RecordCache
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId


@dataclass(frozen=True, slots=True)
class CachedReads:
    """What ``RecordReads.get`` answers without building its loader: one per process.

    ``None`` means "not answerable from the cache alone" (no cache, a miss, or writes of
    the record waiting in the journal for replay); ``RecordReads`` then answers.
    """

    journal: Journal
    record_cache: RecordCache

    @property
    def enabled(self) -> bool:
        return self.record_cache.cache is not None

    async def get(self, tenant: TenantId, evaluation_id: EvaluationId) -> Evaluation | None:
        if not self.enabled or await self.journal.pending_for(tenant, evaluation_id):
            return None
        return await self.record_cache.get(tenant, evaluation_id)
