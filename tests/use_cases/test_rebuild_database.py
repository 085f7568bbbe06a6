"""``rebuild_database``: a mirror restored into an empty store, batch by batch, a copy the
store refuses reported alone, a second run restoring nothing, and the other way
(``CopyToMirror``) for soft-deleted records too."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import msgspec
import pytest
from dishka import AsyncContainer, Provider, Scope, from_context

from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.ports.record_mirror import MirroredEvaluation, RecordMirror
from application.services.payloads import PayloadStore
from application.use_cases.import_evaluations import ImportEvaluation
from application.use_cases.rebuild_database import CopyToMirror, RestoreScope, rebuild_database
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent, LogChunk
from infrastructure.memory.mirror import MemoryRecordMirror
from tests.factories import EvaluationFactory
from tests.use_cases.conftest import FakeWorkerLogs, FixedClock, use_case_container

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 6, tzinfo=UTC)


class OwnMirror(Provider):
    """The deployment's own mirror: one the test reads (``FILE_MIRROR`` in memory)."""

    mirror = from_context(provides=RecordMirror, scope=Scope.APP, override=True)


@pytest.fixture
def own() -> MemoryRecordMirror:
    return MemoryRecordMirror()


@pytest.fixture
async def container(own: MemoryRecordMirror) -> AsyncIterator[AsyncContainer]:
    built = use_case_container(
        FixedClock(), FakeWorkerLogs(), OwnMirror(), context={RecordMirror: own}
    )
    try:
        yield built
    finally:
        await built.close()


def scope_of(container: AsyncContainer) -> RestoreScope:
    @asynccontextmanager
    async def scope() -> AsyncIterator[tuple[ImportEvaluation, PayloadStore]]:
        async with container() as request:
            yield await request.get(ImportEvaluation), await request.get(PayloadStore)

    return scope


async def _tree(count: int) -> tuple[MemoryRecordMirror, list[Evaluation]]:
    mirror = MemoryRecordMirror()
    records = [
        EvaluationFactory.build(id=EvaluationId(f"r-{n:03d}"), version=3) for n in range(count)
    ]
    for record in records:
        await mirror.record(record)
        event = EvaluationEvent(
            evaluation_id=record.id, event_id=f"{record.id}-e", event_type="note", timestamp=T0
        )
        await mirror.event(event)
        await mirror.log(
            LogChunk(evaluation_id=record.id, offset=0, content="log ✓\n", created_at=T0)
        )
    return mirror, records


async def test_every_copy_is_restored_in_batches_and_a_second_run_restores_none(
    container: AsyncContainer,
) -> None:
    mirror, records = await _tree(5)
    progress: list[int] = []
    report = await rebuild_database(mirror, scope_of(container), progress.append, batch_size=2)
    assert (report.restored, report.skipped, report.events, report.unreadable) == (5, 0, 5, [])
    assert progress == [2, 2, 1]
    async with container() as request:
        repository = await request.get(EvaluationRepository)
        for record in records:
            stored = await repository.get(record.id)
            assert stored is not None and stored.version == record.version == 3
            assert [e.event_id for e in await (await request.get(EventLog)).list(record.id)] == [
                f"{record.id}-e"
            ]
            assert (await (await request.get(LogStore)).read(record.id)).content == "log ✓\n"
    again = await rebuild_database(mirror, scope_of(container), batch_size=2)
    assert (again.restored, again.skipped) == (0, 5)


@pytest.mark.parametrize("refused", [1, 4], ids=["in-a-full-batch", "alone-in-the-last-batch"])
async def test_a_refused_copy_is_reported_alone_and_the_rest_restored(
    container: AsyncContainer, refused: int
) -> None:
    mirror, records = await _tree(5)
    bad = msgspec.structs.replace(records[refused], code="nul \x00 byte", version=9)
    await mirror.record(bad)
    report = await rebuild_database(mirror, scope_of(container), batch_size=2)
    assert report.restored == 4
    assert [item.path for item in report.unreadable] == [f"evaluations/{bad.id}"]
    async with container() as request:
        assert await (await request.get(EvaluationRepository)).get(bad.id) is None


@pytest.mark.parametrize("copy", [True, False], ids=["another-tree", "its-own-tree"])
async def test_a_copy_from_another_tree_reaches_this_mirror_whole(
    container: AsyncContainer, own: MemoryRecordMirror, copy: bool
) -> None:
    source, records = await _tree(2)
    report = await rebuild_database(source, scope_of(container), copy=copy)
    assert report.restored == 2
    copied = {
        found.record.id: found
        async for found in own.evaluations()
        if isinstance(found, MirroredEvaluation)
    }
    assert set(copied) == {record.id for record in records}  # records: always, versioned
    for record in records:
        found = copied[record.id]
        assert isinstance(found, MirroredEvaluation)
        # From its own tree, its events and log are where they came from: never doubled.
        assert [e.event_id for e in found.events] == ([f"{record.id}-e"] if copy else [])
        assert found.log == ("log ✓\n" if copy else "")


async def test_a_deleted_record_is_copied_deleted(container: AsyncContainer) -> None:
    mirror = MemoryRecordMirror()
    record = EvaluationFactory.build(id=EvaluationId("gone-1"), deleted_at=T0, version=2)
    async with container() as request:
        await (await request.get(ImportEvaluation)).restore(
            MirroredEvaluation(record=record, events=[], log="")
        )
    async with container() as request:
        copy = CopyToMirror(
            repository=await request.get(EvaluationRepository),
            events=await request.get(EventLog),
            logs=await request.get(LogStore),
            mirror=mirror,
        )
        assert await copy.execute(record.id) is True
        assert await copy.execute(EvaluationId("never")) is False
    (copied,) = [found async for found in mirror.evaluations()]
    assert isinstance(copied, MirroredEvaluation)
    assert copied.record.deleted_at == T0  # the delete is not undone by a later rebuild
