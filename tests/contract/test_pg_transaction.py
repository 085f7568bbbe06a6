"""The asyncpg unit of work: its connection back at commit, and a create in one statement."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
import msgspec
import pytest

from application.errors import (
    DuplicateEvaluationError,
    VersionConflictError,
    WriteConflictError,
)
from domain.audit import AuditAction, AuditEntry
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT
from infrastructure.postgres.audit import PgAuditLog
from infrastructure.postgres.evaluations import PgEvaluationRepository
from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.transaction import PgTransaction
from interfaces.settings import DatabaseSettings
from tests.contract.conftest import BASE_TIME, make_evaluation

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


TwoRequests = tuple["asyncpg.Pool[asyncpg.Record]", PgTransaction, PgTransaction]
Logged = tuple["asyncpg.Pool[asyncpg.Record]", list[str]]


@pytest.fixture
async def two_requests(migrated_postgres_url: str) -> AsyncIterator[TwoRequests]:
    """A pool of one connection and two requests' units of work on it, closed at the end."""
    pool = await create_pool(DatabaseSettings(url=migrated_postgres_url, pool_size=1))
    try:
        first = PgTransaction(pool, acquire_timeout_s=1, tenant=DEFAULT_TENANT)
        second = PgTransaction(pool, acquire_timeout_s=1, tenant=DEFAULT_TENANT)
        try:
            yield pool, first, second
        finally:
            await second.close()
            await first.close()
    finally:
        await pool.close()


@pytest.fixture
async def logged(migrated_postgres_url: str) -> AsyncIterator[Logged]:
    """A pool of one connection and the list its every statement is appended to."""
    sent: list[str] = []
    pool = await create_pool(DatabaseSettings(url=migrated_postgres_url, pool_size=1))
    try:
        async with pool.acquire() as connection:
            connection.add_query_logger(lambda logged: sent.append(logged.query.split()[0]))
        yield pool, sent
    finally:
        await pool.close()


async def test_a_committed_request_holds_no_connection(two_requests: TwoRequests) -> None:
    _, first, second = two_requests
    await first.write(lambda connection: connection.execute("SELECT 1"))
    await first.commit()
    # The first scope is still open (its answer is being sent): the one
    # connection of the pool must already be free for the next request.
    assert await second.write(lambda connection: connection.fetchval("SELECT 2")) == 2
    await second.commit()
    # And the first can still run statements after its commit: it acquires again.
    assert await first.read(lambda connection: connection.fetchval("SELECT 3")) == 3


async def test_a_read_outside_a_transaction_gives_its_connection_back_at_once(
    two_requests: TwoRequests,
) -> None:
    pool, first, second = two_requests
    assert await first.read(lambda connection: connection.fetchval("SELECT 1")) == 1
    # The first scope is still open (sending its answer): the pool's one
    # connection must be free for the next request already (else: unavailable).
    assert await second.read(lambda connection: connection.fetchval("SELECT 2")) == 2
    # Inside a transaction a read keeps the connection: it must see the writes.
    await first.write(lambda connection: connection.execute("SELECT 3"))
    assert await first.read(lambda connection: connection.fetchval("SELECT 4")) == 4
    with pytest.raises(TimeoutError):
        await pool.acquire(timeout=0.2)


def _created(evaluation_id: str) -> AuditEntry:
    return AuditEntry(
        at=BASE_TIME,
        actor="tester",
        action=AuditAction.CREATE,
        evaluation_id=evaluation_id,
        fields=("code",),
        sizes={"code": 4},
        request_id="req-1",
    )


async def _audited(pool: "asyncpg.Pool[asyncpg.Record]", evaluation_id: str) -> list[str]:
    rows = await pool.fetch("SELECT action FROM audit_log WHERE evaluation_id = $1", evaluation_id)
    return [row["action"] for row in rows]


@asynccontextmanager
async def _unit(pool: "asyncpg.Pool[asyncpg.Record]") -> AsyncIterator[PgTransaction]:
    """One request's unit of work on ``pool``, closed whatever happens."""
    transaction = PgTransaction(pool, acquire_timeout_s=1, tenant=DEFAULT_TENANT)
    try:
        yield transaction
    finally:
        await transaction.close()


async def _stored(pool: "asyncpg.Pool[asyncpg.Record]", evaluation_id: str) -> Evaluation | None:
    """The record as committed, read in a unit of work of its own."""
    async with _unit(pool) as check:
        return await PgEvaluationRepository(check).get(EvaluationId(evaluation_id))


async def test_a_create_and_its_audit_entry_are_one_statement(logged: Logged) -> None:
    record = make_evaluation(f"one-statement-{uuid.uuid4().hex[:8]}")
    pool, sent = logged
    async with _unit(pool) as transaction:
        await PgEvaluationRepository(transaction).add(record)
        await PgAuditLog(transaction).append(_created(record.id))
        assert sent == [], "nothing is sent before the commit"
        await transaction.commit()
    assert sent == ["WITH"]  # no BEGIN, no COMMIT: the statement is its own transaction
    stored = await _stored(pool, record.id)
    assert await _audited(pool, record.id) == ["create"]
    assert stored == record


async def test_a_taken_id_raises_at_the_commit_and_writes_no_audit_entry(
    logged: Logged,
) -> None:
    record = make_evaluation(f"taken-{uuid.uuid4().hex[:8]}")
    pool, _ = logged
    for attempt in range(2):
        async with _unit(pool) as transaction:
            await PgEvaluationRepository(transaction).add(record)
            await PgAuditLog(transaction).append(_created(record.id))
            if attempt == 0:
                await transaction.commit()
            else:
                with pytest.raises(DuplicateEvaluationError):
                    await transaction.commit()
    assert await _audited(pool, record.id) == ["create"]


async def test_a_statement_after_a_held_insert_runs_it_first_in_one_transaction(
    logged: Logged,
) -> None:
    record = make_evaluation(f"read-back-{uuid.uuid4().hex[:8]}")
    pool, sent = logged
    async with _unit(pool) as transaction:
        repository = PgEvaluationRepository(transaction)
        await repository.add(record)
        assert await repository.get(record.id) == record  # the transaction sees it
        await PgAuditLog(transaction).append(_created(record.id))
        await transaction.rollback()
    assert sent[:2] == ["BEGIN;", "WITH"], sent
    assert await _stored(pool, record.id) is None
    assert await _audited(pool, record.id) == []


async def test_an_update_and_its_audit_entry_are_one_statement_and_lose_to_a_newer_version(
    logged: Logged,
) -> None:
    record = make_evaluation(f"one-update-{uuid.uuid4().hex[:8]}")
    pool, sent = logged
    async with _unit(pool) as setup:
        await PgEvaluationRepository(setup).add(record)
        await setup.commit()
    changed = msgspec.structs.replace(record, code="second", version=2)
    for expected, outcome in ((1, None), (1, VersionConflictError)):
        sent.clear()
        async with _unit(pool) as transaction:
            await PgEvaluationRepository(transaction).update(changed, expected_version=expected)
            await PgAuditLog(transaction).append(
                msgspec.structs.replace(_created(record.id), action=AuditAction.UPDATE)
            )
            if outcome is None:
                await transaction.commit()
                # An UPDATE cannot set its tenant itself: BEGIN sets it (ADR 0032).
                assert sent == ["BEGIN;", "WITH", "COMMIT"]
            else:
                with pytest.raises(outcome):
                    await transaction.commit()
    assert await _audited(pool, record.id) == ["update"]  # the refused one wrote none
    stored = await _stored(pool, record.id)
    assert stored == changed


async def test_a_deadlock_ends_one_unit_of_work_as_a_write_conflict_and_the_other_commits(
    migrated_postgres_url: str,
) -> None:
    """Two units of work each change one record, then the other's: PostgreSQL ends one of
    them to break the deadlock. It leaves as ``WriteConflictError`` (nothing of it
    written, to be tried again), not as the driver's error; the other commits."""
    first, second = (make_evaluation(f"deadlock-{n}-{uuid.uuid4().hex[:8]}") for n in (1, 2))
    pool = await create_pool(DatabaseSettings(url=migrated_postgres_url, pool_size=2))
    try:
        async with _unit(pool) as setup:
            for record in (first, second):
                await PgEvaluationRepository(setup).add(record)
                await setup.commit()
        both_hold_one = anyio.Event()
        holding: list[str] = []
        ended: dict[str, BaseException | None] = {}

        async def change(mine: str, theirs: str) -> None:
            touch = "UPDATE evaluations SET code = code || '+' WHERE id = $1"

            async def statement(connection: Any, evaluation_id: str) -> None:
                await connection.execute(touch, evaluation_id)

            async with _unit(pool) as transaction:
                try:
                    await transaction.write(lambda connection: statement(connection, mine))
                    holding.append(mine)
                    if len(holding) == 2:
                        both_hold_one.set()
                    await both_hold_one.wait()
                    await transaction.write(lambda connection: statement(connection, theirs))
                    await transaction.commit()
                    ended[mine] = None
                except WriteConflictError as error:
                    ended[mine] = error

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(change, first.id, second.id)
                group.start_soon(change, second.id, first.id)
        stored = [await _stored(pool, each.id) for each in (first, second)]
    finally:
        await pool.close()

    assert sorted(error is None for error in ended.values()) == [False, True], ended
    (error,) = (error for error in ended.values() if error is not None)
    assert "deadlock detected" in str(error), error
    codes = [each.code if each is not None else None for each in stored]
    assert codes == [first.code + "+", second.code + "+"], codes  # one committer's two changes
