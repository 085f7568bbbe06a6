"""``rebuild_database``: a mirror restored into an empty store, batch by batch, a copy the
store refuses reported alone, a second run restoring nothing, and the other way
(``CopyToMirror``) for soft-deleted records too."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import msgspec
import pytest
from dishka import AsyncContainer, Provider, Scope, from_context, provide

from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.ports.record_mirror import MirroredEvaluation, RecordMirror
from application.services.payloads import PayloadStore
from application.use_cases.import_evaluations import ImportEvaluation
from application.use_cases.rebuild_database import (
    RESTORE_ATTEMPTS,
    CopyToMirror,
    RestoreScope,
    rebuild_database,
)
from domain.audit import AuditContext
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId
from domain.timeline import EvaluationEvent, LogChunk
from infrastructure.memory.evaluations import MemoryDatabase, MemoryEvaluationRepository
from infrastructure.memory.mirror import MemoryRecordMirror
from interfaces import acting
from tests.factories import EvaluationFactory
from tests.use_cases.conftest import FakeWorkerLogs, FixedClock, use_case_container
from tests.use_cases.failover_world import Outage, OutageRepository

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 6, tzinfo=UTC)
D, ACME = DEFAULT_TENANT, TenantId("acme")


class OwnMirror(Provider):
    """The deployment's own mirror: one the test reads (``FILE_MIRROR`` in memory); each
    scope acts for the acting context's tenant, as the CLI's do (the default one if none)."""

    mirror = from_context(provides=RecordMirror, scope=Scope.APP, override=True)

    @provide(scope=Scope.REQUEST, override=True)
    def audit_context(self) -> AuditContext:
        return AuditContext(actor="tester", tenant=acting.current().tenant or DEFAULT_TENANT)


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
    async def scope(tenant: TenantId) -> AsyncIterator[tuple[ImportEvaluation, PayloadStore]]:
        with acting.acting_as(AuditContext(actor="tester", tenant=tenant)):
            async with container() as request:
                yield await request.get(ImportEvaluation), await request.get(PayloadStore)

    return scope


async def _tree(
    count: int, mirror: MemoryRecordMirror | None = None, tenant: TenantId = D
) -> tuple[MemoryRecordMirror, list[Evaluation]]:
    mirror = mirror or MemoryRecordMirror()
    records = [
        EvaluationFactory.build(id=EvaluationId(f"r-{n:03d}"), version=3, metadata={"t": tenant})
        for n in range(count)
    ]
    for record in records:
        await mirror.record(tenant, record)
        event = EvaluationEvent(
            evaluation_id=record.id, event_id=f"{tenant}-e", event_type="note", timestamp=T0
        )
        await mirror.event(tenant, event)
        await mirror.log(
            tenant, LogChunk(evaluation_id=record.id, offset=0, content="log ✓\n", created_at=T0)
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
                f"{D}-e"
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
    await mirror.record(D, bad)
    report = await rebuild_database(mirror, scope_of(container), batch_size=2)
    assert report.restored == 4
    assert [item.path for item in report.unreadable] == [f"evaluations/{bad.id}"]
    async with container() as request:
        assert await (await request.get(EvaluationRepository)).get(bad.id) is None


class EndingWrites(Provider):
    """The repository of ``Outage`` (tests/use_cases/failover_world.py): its next
    ``outage.ending`` adds are ended as PostgreSQL ends a deadlock's victim."""

    outage = from_context(provides=Outage, scope=Scope.APP)

    @provide(scope=Scope.REQUEST, override=True)
    def repository(
        self, database: MemoryDatabase, tenant: TenantId, outage: Outage
    ) -> EvaluationRepository:
        return OutageRepository(MemoryEvaluationRepository(database, tenant), outage)


@pytest.mark.parametrize(
    ("ended", "restored"),
    [(2, True), (RESTORE_ATTEMPTS + 1, False)],
    ids=["ended-then-restored", "ended-every-time"],
)
async def test_a_copy_the_database_ends_for_a_concurrent_writer_is_tried_again(
    own: MemoryRecordMirror, ended: int, restored: bool
) -> None:
    """Ended in its batch and then once alone, a copy is restored at the next attempt;
    ended every time, it is reported with the database's reason, not lost silently."""
    outage = Outage()
    container = use_case_container(
        FixedClock(),
        FakeWorkerLogs(),
        OwnMirror(),
        EndingWrites(),
        context={RecordMirror: own, Outage: outage},
    )
    try:
        mirror, [record] = await _tree(1)
        outage.ending = ended  # its batch of one, then each attempt alone
        report = await rebuild_database(mirror, scope_of(container), batch_size=1)
        assert outage.ending == 0
        assert report.restored == int(restored)
        reasons = [item.reason for item in report.unreadable]
        assert len(reasons) == (0 if restored else 1), reasons
        assert all("deadlock" in reason for reason in reasons), reasons
        async with container() as request:
            stored = await (await request.get(EvaluationRepository)).get(record.id)
            assert (stored is not None) is restored
    finally:
        await container.close()


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
        assert [e.event_id for e in found.events] == ([f"{D}-e"] if copy else [])
        assert found.log == ("log ✓\n" if copy else "")


async def test_a_deleted_record_is_copied_deleted(container: AsyncContainer) -> None:
    mirror = MemoryRecordMirror()
    record = EvaluationFactory.build(id=EvaluationId("gone-1"), deleted_at=T0, version=2)
    async with container() as request:
        await (await request.get(ImportEvaluation)).restore(
            MirroredEvaluation(tenant=D, record=record, events=[], log="")
        )
    async with container() as request:
        copy = CopyToMirror(
            repository=await request.get(EvaluationRepository),
            events=await request.get(EventLog),
            logs=await request.get(LogStore),
            mirror=mirror,
            tenant=D,
        )
        assert await copy.execute(record.id) is True
        assert await copy.execute(EvaluationId("never")) is False
    (copied,) = [found async for found in mirror.evaluations()]
    assert isinstance(copied, MirroredEvaluation)
    assert copied.record.deleted_at == T0  # the delete is not undone by a later rebuild


async def test_each_tenants_copies_are_restored_into_that_tenant(
    container: AsyncContainer,
) -> None:
    mirror, ours = await _tree(3)
    _, theirs = await _tree(2, mirror, ACME)  # r-000 and r-001 in both tenants
    progress: list[int] = []
    report = await rebuild_database(mirror, scope_of(container), progress.append, batch_size=3)
    assert (report.restored, report.events, report.unreadable) == (5, 5, [])
    assert progress == [2, 3]  # a batch is one tenant's: acme's two, then the default's
    for tenant, records in ((D, ours), (ACME, theirs)):
        with acting.acting_as(AuditContext(actor="tester", tenant=tenant)):
            async with container() as request:
                repository = await request.get(EvaluationRepository)
                events = await request.get(EventLog)
                for record in records:
                    stored = await repository.get(record.id)
                    assert stored is not None and stored.metadata == {"t": tenant}
                    assert [e.event_id for e in await events.list(record.id)] == [f"{tenant}-e"]
                present = await repository.get(EvaluationId("r-002")) is not None
                assert present is (tenant == D)
    again = await rebuild_database(mirror, scope_of(container))
    assert (again.restored, again.skipped) == (0, 5)


async def test_a_tenants_refused_copy_is_reported_under_its_path(
    container: AsyncContainer,
) -> None:
    mirror = MemoryRecordMirror()
    bad = EvaluationFactory.build(id=EvaluationId("bad-1"), code="nul \x00 byte")
    await mirror.record(ACME, bad)
    report = await rebuild_database(mirror, scope_of(container))
    assert [item.path for item in report.unreadable] == ["tenants/acme/evaluations/bad-1"]
