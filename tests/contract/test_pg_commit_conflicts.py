"""On PostgreSQL a conflict surfaces at the commit (the write is held until then): the
record writer and the create use case must treat it exactly as one raised earlier."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from application.errors import EvaluationNotFoundError, PreconditionFailedError
from application.services.audit_trail import AuditContext, AuditTrail
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from application.services.record_cache import RecordCache
from application.services.record_writer import RecordWriter
from application.use_cases.create_evaluation import CreateEvaluation, NewEvaluation
from domain.audit import AuditAction
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.payload import StorageThresholds
from infrastructure.clock import SystemClock
from infrastructure.memory.blob_store import MemoryBlobStore
from infrastructure.memory.log_tail import MemoryLogTail
from infrastructure.memory.replay_marks import MemoryReplayMarks
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.postgres.audit import PgAuditLog
from infrastructure.postgres.evaluations import PgEvaluationRepository
from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.transaction import PgTransaction
from interfaces.settings import Settings
from tests.contract.conftest import make_evaluation

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def pool(migrated_postgres_url: str) -> AsyncIterator["asyncpg.Pool[asyncpg.Record]"]:
    created = await create_pool(Settings(database_url=migrated_postgres_url, db_pool_size=4))
    yield created
    await created.close()


class Request:
    """One request's unit of work and the services a write goes through, on PostgreSQL."""

    def __init__(self, pool: "asyncpg.Pool[asyncpg.Record]") -> None:
        self.transaction = PgTransaction(pool, acquire_timeout_s=5)
        self.repository = PgEvaluationRepository(self.transaction)
        clock = SystemClock()
        self.audit = AuditTrail(
            PgAuditLog(self.transaction), clock, AuditContext(actor="t"), MemoryReplayMarks()
        )
        publisher = RecordPublisher(RecordCache(None), MemoryRunningRegistry(), MemoryLogTail(64))
        payloads = PayloadStore(MemoryBlobStore(), StorageThresholds())
        self.writer = RecordWriter(
            self.repository, self.transaction, clock, payloads, publisher, self.audit
        )
        self.create = CreateEvaluation(
            self.repository, self.transaction, clock, publisher, self.audit, InputLimits()
        )

    async def __aenter__(self) -> "Request":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.transaction.close()


async def _stored(pool: "asyncpg.Pool[asyncpg.Record]", evaluation_id: str) -> Evaluation:
    async with Request(pool) as request:
        found = await request.repository.get(EvaluationId(evaluation_id))
    assert found is not None
    return found


async def _updates_audited(pool: "asyncpg.Pool[asyncpg.Record]", evaluation_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE evaluation_id = $1 AND action = 'update'",
        evaluation_id,
    )
    return count


async def _seeded(pool: "asyncpg.Pool[asyncpg.Record]") -> Evaluation:
    record = make_evaluation(f"conflict-{uuid.uuid4().hex[:8]}")
    async with Request(pool) as request:
        await request.repository.add(record)
        await request.transaction.commit()
    return record


async def _overtake(pool: "asyncpg.Pool[asyncpg.Record]", evaluation_id: str, key: str) -> None:
    """Another request's complete update of the record, committed."""
    async with Request(pool) as other:

        async def mark(evaluation: Evaluation) -> bool:
            evaluation.merge_metadata({key: True})
            return True

        await other.writer.change(EvaluationId(evaluation_id), mark, action=AuditAction.UPDATE)


async def test_an_update_overtaken_before_its_commit_is_applied_again(
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    record = await _seeded(pool)
    attempts = 0

    async def mine(evaluation: Evaluation) -> bool:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # after this attempt's read, before its commit
            await _overtake(pool, record.id, "theirs")
        evaluation.merge_metadata({"mine": attempts})
        return True

    async with Request(pool) as request:
        committed, changed = await request.writer.change(record.id, mine, action=AuditAction.UPDATE)
    assert changed
    assert attempts == 2
    stored = await _stored(pool, record.id)
    assert stored == committed
    assert stored.metadata == {"theirs": True, "mine": 2}
    assert stored.version == 3
    assert await _updates_audited(pool, record.id) == 2  # theirs and the one that won


async def test_if_match_overtaken_before_its_commit_is_refused(
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    record = await _seeded(pool)

    async def mine(evaluation: Evaluation) -> bool:
        await _overtake(pool, record.id, "theirs")
        evaluation.merge_metadata({"mine": True})
        return True

    async with Request(pool) as request:
        with pytest.raises(PreconditionFailedError) as refused:
            await request.writer.change(
                record.id, mine, action=AuditAction.UPDATE, expected_version=1
            )
        # The unit of work is usable afterwards: nothing held, no transaction left open.
        assert request.transaction.held is None
        await request.transaction.release()
    assert refused.value.actual == 2
    assert (await _stored(pool, record.id)).metadata == {"theirs": True}
    assert await _updates_audited(pool, record.id) == 1


async def test_an_update_of_a_record_removed_before_its_commit_is_not_found(
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    record = await _seeded(pool)

    async def mine(evaluation: Evaluation) -> bool:
        await pool.execute("DELETE FROM evaluations WHERE id = $1", record.id)
        evaluation.merge_metadata({"mine": True})
        return True

    async with Request(pool) as request:
        with pytest.raises(EvaluationNotFoundError):
            await request.writer.change(record.id, mine, action=AuditAction.UPDATE)
        await request.transaction.release()  # nothing left open
    assert await _updates_audited(pool, record.id) == 0


async def test_a_generated_id_taken_at_the_commit_is_replaced(
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    taken = await _seeded(pool)
    async with Request(pool) as request:
        created = await request.create.execute(
            NewEvaluation(code="x", id=taken.id), generated_id=True
        )
    assert created.id != taken.id
    assert (await _stored(pool, created.id)).code == "x"
    assert (await _stored(pool, taken.id)) == taken
