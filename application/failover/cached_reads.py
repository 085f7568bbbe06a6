"""A record read that needs nothing of a request: the cache's copy, when the journal
holds no write of the record that the copy could be missing."""

from contextvars import ContextVar
from dataclasses import dataclass

from application.ports.journal import Journal
from application.services.record_cache import RecordCache
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId

# The record this task's ``CachedReads`` asked the cache for and did not find: the read
# that follows in the same request goes to the store without asking again.
_missed: ContextVar[tuple[TenantId, EvaluationId] | None] = ContextVar("cache_missed", default=None)


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
        found = await self.record_cache.get(tenant, evaluation_id)
        if found is None:
            _missed.set((tenant, evaluation_id))
        return found


def cache_missed(tenant: TenantId, evaluation_id: EvaluationId) -> bool:
    """Whether this task already asked the cache for the record and missed: one lookup
    per read, counted once, and one wait (not two) while the cache is unreachable."""
    return _missed.get() == (tenant, evaluation_id)
