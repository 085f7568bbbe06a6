"""ReplayMarks contract: a mark commits or rolls back with its transaction, forget commits."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from application.ports.replay_marks import ReplayMarks
from application.ports.unit_of_work import UnitOfWork
from domain.tenancy import DEFAULT_TENANT
from infrastructure.memory.replay_marks import MemoryReplayMarks
from infrastructure.memory.unit_of_work import MemoryUnitOfWork
from infrastructure.postgres.replay_marks import PgReplayMarks
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.sql.replay_marks import FORGET_BATCH, SqlReplayMarks
from infrastructure.sql.tenancy import bind_tenant
from infrastructure.sql.unit_of_work import SqlUnitOfWork
from tests.contract.conftest import PgPortStore, PortStore, SqlPortStore

pytestmark = pytest.mark.anyio


@dataclass
class Scope:
    marks: ReplayMarks
    uow: UnitOfWork


@dataclass
class MarksStore:
    """``ReplayMarks`` over one backend of ``sql_backend``; ``session()`` is one request."""

    backend: PortStore
    memory: MemoryReplayMarks = field(default_factory=MemoryReplayMarks)

    @property
    def kind(self) -> str:
        return self.backend.kind

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Scope]:
        """Commit on a clean exit, as a use case commits through the unit of work."""
        backend = self.backend
        if isinstance(backend, PgPortStore):
            transaction = PgTransaction(backend.pool, acquire_timeout_s=10, tenant=DEFAULT_TENANT)
            try:
                yield Scope(PgReplayMarks(transaction), transaction)
                await transaction.commit()
            finally:
                await transaction.close()
        elif isinstance(backend, SqlPortStore):
            async with backend.session_maker() as session:
                bind_tenant(session, DEFAULT_TENANT)
                uow = SqlUnitOfWork(session)
                yield Scope(SqlReplayMarks(session), uow)
                await uow.commit()
        else:
            memory_uow = MemoryUnitOfWork()
            yield Scope(self.memory, memory_uow)
            await memory_uow.commit()


@pytest.fixture
def marks_store(sql_backend: PortStore) -> MarksStore:
    return MarksStore(sql_backend)


async def _applied(store: MarksStore, *entry_ids: str) -> list[bool]:
    async with store.session() as scope:
        return [await scope.marks.is_applied(entry_id) for entry_id in entry_ids]


async def test_an_entry_is_not_applied_before_it_is_marked(marks_store: MarksStore) -> None:
    assert await _applied(marks_store, "entry-1") == [False]


async def test_a_committed_mark_is_applied(marks_store: MarksStore) -> None:
    async with marks_store.session() as scope:
        await scope.marks.mark("entry-1")
        await scope.uow.commit()

    assert await _applied(marks_store, "entry-1", "entry-2") == [True, False]


async def test_a_mark_rolls_back_with_its_transaction(marks_store: MarksStore) -> None:
    async with marks_store.session() as scope:
        await scope.marks.mark("entry-1")
        await scope.uow.rollback()

    # The memory backend applies every write at once and cannot undo (MemoryUnitOfWork),
    # the change the mark stands for included: both stay, so they still agree.
    assert await _applied(marks_store, "entry-1") == [marks_store.kind == "memory"]


async def test_marking_twice_in_one_transaction_is_not_an_error(
    marks_store: MarksStore,
) -> None:
    async with marks_store.session() as scope:
        await scope.marks.mark("entry-1")
        await scope.marks.mark("entry-1")
        await scope.uow.commit()

    assert await _applied(marks_store, "entry-1") == [True]


async def test_marking_again_in_a_later_transaction_is_not_an_error(
    marks_store: MarksStore,
) -> None:
    for _ in range(2):
        async with marks_store.session() as scope:
            await scope.marks.mark("entry-1")
            await scope.uow.commit()

    assert await _applied(marks_store, "entry-1") == [True]


async def test_forget_drops_the_given_marks_only(marks_store: MarksStore) -> None:
    async with marks_store.session() as scope:
        for entry_id in ("entry-1", "entry-2", "entry-3"):
            await scope.marks.mark(entry_id)
        await scope.uow.commit()

    async with marks_store.session() as scope:
        await scope.marks.forget(entry_id for entry_id in ("entry-1", "entry-3", "unknown"))

    assert await _applied(marks_store, "entry-1", "entry-2", "entry-3") == [False, True, False]


async def test_forget_commits_by_itself(marks_store: MarksStore) -> None:
    async with marks_store.session() as scope:
        await scope.marks.mark("entry-1")
        await scope.uow.commit()

    async with marks_store.session() as scope:
        await scope.marks.forget(["entry-1"])
        await scope.uow.rollback()

    assert await _applied(marks_store, "entry-1") == [False]


async def test_forget_of_nothing_is_a_no_op(marks_store: MarksStore) -> None:
    async with marks_store.session() as scope:
        await scope.marks.mark("entry-1")
        await scope.uow.commit()

    async with marks_store.session() as scope:
        await scope.marks.forget([])

    assert await _applied(marks_store, "entry-1") == [True]


async def test_forget_takes_more_ids_than_one_statement_binds(marks_store: MarksStore) -> None:
    entry_ids = [f"entry-{number}" for number in range(2 * FORGET_BATCH + 1)]
    async with marks_store.session() as scope:
        for entry_id in entry_ids:
            await scope.marks.mark(entry_id)
        await scope.uow.commit()

    async with marks_store.session() as scope:
        await scope.marks.forget(entry_ids)

    assert await _applied(marks_store, entry_ids[0], entry_ids[FORGET_BATCH], entry_ids[-1]) == [
        False,
        False,
        False,
    ]
