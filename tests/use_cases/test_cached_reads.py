"""``CachedReads``: the cache's copy of a tenant's record, unless a write of that record
waits in the journal (then the copy may be older than what the caller was acknowledged)."""

from datetime import UTC, datetime

import pytest

from application.failover.cached_reads import CachedReads, cache_missed
from application.intents import DeleteIntent, JournalEntry, journal_tenant
from application.services.record_cache import RecordCache
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.memory.cache import MemoryCache
from infrastructure.memory.journal import MemoryJournal
from tests.factories import EvaluationFactory

pytestmark = pytest.mark.anyio

ACME = TenantId("acme")


async def _reads() -> tuple[CachedReads, MemoryJournal]:
    journal = MemoryJournal()
    return CachedReads(journal, RecordCache(MemoryCache(ttl_seconds=60))), journal


def _delete(evaluation_id: str, tenant: TenantId) -> JournalEntry:
    return JournalEntry(
        id=f"entry-{evaluation_id}-{tenant}",
        evaluation_id=evaluation_id,
        at=datetime.now(UTC),
        intent=DeleteIntent(),
        actor="key:test",
        named_tenant=journal_tenant(tenant),
    )


async def test_a_cached_record_is_read_for_its_own_tenant_only() -> None:
    reads, _ = await _reads()
    record = EvaluationFactory.build()
    await reads.record_cache.fill(DEFAULT_TENANT, record)

    assert await reads.get(DEFAULT_TENANT, record.id) == record
    assert await reads.get(ACME, record.id) is None


async def test_a_journaled_write_of_the_record_sends_the_read_elsewhere() -> None:
    reads, journal = await _reads()
    record, other = EvaluationFactory.build(), EvaluationFactory.build()
    for cached in (record, other):
        await reads.record_cache.fill(DEFAULT_TENANT, cached)
    await reads.record_cache.fill(ACME, record)

    await journal.append(_delete(record.id, DEFAULT_TENANT))

    assert await reads.get(DEFAULT_TENANT, record.id) is None
    # Another record, and the same id in another tenant, are still answered.
    assert await reads.get(DEFAULT_TENANT, other.id) == other
    assert await reads.get(ACME, record.id) == record


async def test_without_a_cache_nothing_is_answered() -> None:
    reads = CachedReads(MemoryJournal(), RecordCache(None))
    assert not reads.enabled
    assert await reads.get(DEFAULT_TENANT, EvaluationFactory.build().id) is None


async def test_a_miss_is_remembered_for_the_rest_of_the_task_and_that_record_only() -> None:
    reads, _ = await _reads()
    cached, absent = EvaluationFactory.build(), EvaluationFactory.build()
    await reads.record_cache.fill(DEFAULT_TENANT, cached)

    assert await reads.get(DEFAULT_TENANT, cached.id) == cached
    assert not cache_missed(DEFAULT_TENANT, cached.id)
    assert await reads.get(DEFAULT_TENANT, absent.id) is None
    assert cache_missed(DEFAULT_TENANT, absent.id)
    assert not cache_missed(ACME, absent.id)
    assert not cache_missed(DEFAULT_TENANT, cached.id)
