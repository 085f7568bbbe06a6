"""On PostgreSQL a conflict surfaces at the commit (the write is held until then): the
record writer and the create use case must treat it exactly as one raised earlier."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from dishka import AsyncContainer, Provider, Scope, make_async_container, provide

from application.commands import NewEvaluation
from application.errors import EvaluationNotFoundError, PreconditionFailedError
from application.ports.evaluation_repository import EvaluationRepository
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.update_evaluation import RecordWriter
from domain.audit import AuditAction, AuditContext
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT
from infrastructure.postgres.transaction import PgTransaction
from interfaces.providers import build_providers
from interfaces.settings import (
    CacheSettings,
    DatabaseSettings,
    FallbackBackend,
    Settings,
    StorageSettings,
)
from tests.contract.conftest import make_evaluation

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def app(migrated_postgres_url: str, tmp_path: Path) -> AsyncIterator[AsyncContainer]:
    """The app's container on PostgreSQL (asyncpg write paths), without cache or journal."""
    settings = Settings(
        database=DatabaseSettings(url=migrated_postgres_url, pool_size=4),
        storage=StorageSettings(fallback_backend=FallbackBackend.NONE, file_storage_path=tmp_path),
        cache=CacheSettings(enabled=False),
    )
    container = make_async_container(
        *build_providers(settings), Overrides(), context={Settings: settings}
    )
    yield container
    await container.close()


@pytest.fixture
async def pool(app: AsyncContainer) -> "asyncpg.Pool[asyncpg.Record]":
    found: asyncpg.Pool[asyncpg.Record] = await app.get(asyncpg.Pool)
    return found


class Overrides(Provider):
    @provide(scope=Scope.REQUEST, override=True)
    def audit_context(self) -> AuditContext:
        return AuditContext(actor="t", tenant=DEFAULT_TENANT)


class Request:
    """One request scope: its unit of work and the services a write goes through."""

    def __init__(self, app: AsyncContainer) -> None:
        self._scope = app()

    async def __aenter__(self) -> "Request":
        request = await self._scope.__aenter__()
        self.transaction = await request.get(PgTransaction)
        self.repository: EvaluationRepository = await request.get(EvaluationRepository)
        self.writer = await request.get(RecordWriter)
        self.create = await request.get(CreateEvaluation)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._scope.__aexit__(None, None, None)


async def _stored(app: AsyncContainer, evaluation_id: str) -> Evaluation:
    async with Request(app) as request:
        found = await request.repository.get(EvaluationId(evaluation_id))
    assert found is not None
    return found


async def _updates_audited(pool: "asyncpg.Pool[asyncpg.Record]", evaluation_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE evaluation_id = $1 AND action = 'update'",
        evaluation_id,
    )
    return count


async def _seeded(app: AsyncContainer) -> Evaluation:
    record = make_evaluation(f"conflict-{uuid.uuid4().hex[:8]}")
    async with Request(app) as request:
        await request.repository.add(record)
        await request.transaction.commit()
    return record


async def _overtake(app: AsyncContainer, evaluation_id: str, key: str) -> None:
    """Another request's complete update of the record, committed."""
    async with Request(app) as other:

        async def mark(evaluation: Evaluation) -> bool:
            evaluation.merge_metadata({key: True})
            return True

        await other.writer.change(EvaluationId(evaluation_id), mark, action=AuditAction.UPDATE)


async def test_an_update_overtaken_before_its_commit_is_applied_again(
    app: AsyncContainer,
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    record = await _seeded(app)
    attempts = 0

    async def mine(evaluation: Evaluation) -> bool:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # after this attempt's read, before its commit
            await _overtake(app, record.id, "theirs")
        evaluation.merge_metadata({"mine": attempts})
        return True

    async with Request(app) as request:
        committed, changed = await request.writer.change(record.id, mine, action=AuditAction.UPDATE)
    assert changed
    assert attempts == 2
    stored = await _stored(app, record.id)
    assert stored == committed
    assert stored.metadata == {"theirs": True, "mine": 2}
    assert stored.version == 3
    assert await _updates_audited(pool, record.id) == 2  # theirs and the one that won


async def test_if_match_overtaken_before_its_commit_is_refused(
    app: AsyncContainer,
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    record = await _seeded(app)

    async def mine(evaluation: Evaluation) -> bool:
        await _overtake(app, record.id, "theirs")
        evaluation.merge_metadata({"mine": True})
        return True

    async with Request(app) as request:
        with pytest.raises(PreconditionFailedError) as refused:
            await request.writer.change(
                record.id, mine, action=AuditAction.UPDATE, expected_version=1
            )
        # The unit of work is usable afterwards: nothing held, no transaction left open.
        assert request.transaction.held is None
        await request.transaction.release()
    assert refused.value.actual == 2
    assert (await _stored(app, record.id)).metadata == {"theirs": True}
    assert await _updates_audited(pool, record.id) == 1


async def test_an_update_of_a_record_removed_before_its_commit_is_not_found(
    app: AsyncContainer,
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    record = await _seeded(app)

    async def mine(evaluation: Evaluation) -> bool:
        await pool.execute("DELETE FROM evaluations WHERE id = $1", record.id)
        evaluation.merge_metadata({"mine": True})
        return True

    async with Request(app) as request:
        with pytest.raises(EvaluationNotFoundError):
            await request.writer.change(record.id, mine, action=AuditAction.UPDATE)
        await request.transaction.release()  # nothing left open
    assert await _updates_audited(pool, record.id) == 0


async def test_a_generated_id_taken_at_the_commit_is_replaced(
    app: AsyncContainer,
    pool: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    taken = await _seeded(app)
    async with Request(app) as request:
        created = await request.create.execute(
            NewEvaluation(code="x", id=taken.id), generated_id=True
        )
    assert created.id != taken.id
    assert (await _stored(app, created.id)).code == "x"
    assert (await _stored(app, taken.id)) == taken
