"""Failover on the memory adapters: routing, answers from the journal, exactly-once replay.

The primary's outage is a switch on the repository (every call raises what the
SQL adapters raise when PostgreSQL is gone); tests/e2e/test_failover.py does the
same against a real PostgreSQL that is stopped with ``pg_ctl -m immediate``.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import anyio
import pytest
from dishka import Provider, Scope, from_context, provide

from application.backends import Backend
from application.errors import (
    BackendUnavailableError,
    EvaluationNotFoundError,
    WriteAcceptedError,
)
from application.failover.pinned_clock import PinnableClock
from application.failover.primary import PrimaryState
from application.failover.reads import RecordReads
from application.failover.replay import ReplayJournal
from application.failover.writes import WriteHandlers, Writes, handled
from application.intents import CreateIntent, Intent, Target, UpdateIntent
from application.ports.audit_log import AuditLog, AuditQuery
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.journal import Journal
from application.ports.replay_marks import ReplayMarks
from application.ports.unit_of_work import UnitOfWork
from application.services.payloads import PayloadStore
from application.services.record_cache import RecordCache
from application.use_cases.celery_update import CeleryUpdate
from application.use_cases.create_evaluation import NewEvaluation
from application.use_cases.events import NewEvent
from application.use_cases.update_evaluation import EvaluationChanges
from domain.audit import AuditAction, AuditContext
from domain.errors import InvalidTextError
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from infrastructure.files.journal import FileJournal
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.blob_store import MemoryBlobStore
from infrastructure.memory.cache import MemoryCache
from infrastructure.memory.evaluations import MemoryDatabase, MemoryEvaluationRepository
from infrastructure.memory.journal import MemoryJournal
from infrastructure.memory.replay_marks import MemoryReplayMarks
from infrastructure.memory.unit_of_work import MemoryUnitOfWork
from interfaces import acting
from interfaces.replay import ContainerReplayScopes
from tests.use_cases.conftest import THRESHOLDS, FakeWorkerLogs, FixedClock, use_case_container

pytestmark = pytest.mark.anyio

ID = EvaluationId("eval-failover-1")
ACTOR = "key:worker"


class Outage:
    """The primary's state: while ``down``, every repository call fails like PostgreSQL's."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def check(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailableError(Backend.DATABASE, "ConnectionRefusedError: test outage")


class OutageRepository:
    """``EvaluationRepository`` that fails while the outage lasts."""

    def __init__(self, inner: MemoryEvaluationRepository, outage: Outage) -> None:
        self._inner = inner
        self._outage = outage

    async def add(self, evaluation: Evaluation) -> None:
        self._outage.check()
        await self._inner.add(evaluation)

    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        self._outage.check()
        return await self._inner.get(evaluation_id)

    async def get_fields(self, evaluation_id: EvaluationId, fields: frozenset[str]) -> Any:
        self._outage.check()
        return await self._inner.get_fields(evaluation_id, fields)

    async def update(self, evaluation: Evaluation, expected_version: int) -> None:
        self._outage.check()
        await self._inner.update(evaluation, expected_version)


class WorldOverrides(Provider):
    """The app's wiring with the world's shared state and an outage switch on the primary."""

    scope = Scope.APP
    database = from_context(provides=MemoryDatabase, override=True)
    journal = from_context(provides=Journal, override=True)
    cache = from_context(provides=RecordCache, override=True)
    marks = from_context(provides=ReplayMarks, override=True)
    audit_log = from_context(provides=AuditLog, override=True)
    primary = from_context(provides=PrimaryState, override=True)
    blobs = from_context(provides=MemoryBlobStore, override=True)
    outage = from_context(provides=Outage)

    @provide(scope=Scope.REQUEST, override=True)
    def audit_context(self) -> AuditContext:
        return acting.current()  # as the app: who the request acts as (``World.wire``)

    @provide(scope=Scope.REQUEST, override=True)
    def repository(self, database: MemoryDatabase, outage: Outage) -> EvaluationRepository:
        return OutageRepository(MemoryEvaluationRepository(database), outage)


@dataclass
class Wiring:
    """One request's worth of collaborators (one request scope of the world's container)."""

    writes: Writes
    reads: RecordReads
    handlers: WriteHandlers
    uow: UnitOfWork


class World:
    """The shared state of one deployment: database, cache, blobs, journal, marks."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.fixed = FixedClock()
        self.clock = PinnableClock(self.fixed)
        self.outage = Outage()
        self.database = MemoryDatabase()
        self.cache = RecordCache(MemoryCache(ttl_seconds=3600))
        self.blobs = MemoryBlobStore()
        self.payloads = PayloadStore(self.blobs, THRESHOLDS)
        self.journal: Journal = journal or MemoryJournal()
        self.marks = MemoryReplayMarks()
        self.audit_log = MemoryAuditLog()
        self.requests = 0
        self.primary = PrimaryState(self.clock)
        self.container = use_case_container(
            self.clock,
            FakeWorkerLogs(),
            WorldOverrides(),
            context={
                MemoryDatabase: self.database,
                Journal: self.journal,
                RecordCache: self.cache,
                ReplayMarks: self.marks,
                AuditLog: self.audit_log,
                PrimaryState: self.primary,
                MemoryBlobStore: self.blobs,
                Outage: self.outage,
            },
        )

    async def wire(self, context: AuditContext | None = None) -> Wiring:
        """A new request: its own request id, as the HTTP edge gives each one."""
        self.requests += 1
        context = context or AuditContext(actor=ACTOR, request_id=f"req-{self.requests}")
        # A request scope of memory adapters holds no finalizer: it ends with the test.
        request = self.container()
        # Resolved while acting as ``context``: the request scope keeps it for the use
        # cases built later, as the HTTP guard's context lasts the whole request.
        with acting.acting_as(context):
            return Wiring(
                writes=await request.get(Writes),
                reads=await request.get(RecordReads),
                handlers=await request.get(WriteHandlers),
                uow=await request.get(UnitOfWork),
            )

    def replay(self) -> ReplayJournal:
        return ReplayJournal(self.journal, ContainerReplayScopes(self.container), self.primary)

    def stored(self, evaluation_id: EvaluationId) -> Evaluation:
        return self.database.evaluations[evaluation_id]

    def primary_down(self) -> bool:
        """Read afresh each time (an attribute read would stay narrowed across awaits)."""
        return self.primary.is_down


@pytest.fixture
async def world() -> AsyncIterator[World]:
    built = World()
    yield built
    await built.container.close()


async def create(world: World, **fields: Any) -> Evaluation:
    return await (await world.wire()).writes.create(NewEvaluation(**{"code": "print(1)", **fields}))


async def test_a_write_goes_to_the_primary_while_it_is_up(world: World) -> None:
    created = await create(world, id=ID)

    assert world.stored(ID) == created
    assert not await world.journal.has_pending()


async def test_a_create_during_an_outage_is_journaled_and_answered_in_full(world: World) -> None:
    world.outage.down = True

    created = await create(world, metadata={"suite": "a"})

    assert created.id.startswith("eval_20240701_120000_")
    assert created.metadata == {"suite": "a"}
    assert created.created_at == world.fixed.now()
    [entry] = await world.journal.pending()
    assert entry.evaluation_id == created.id
    assert entry.actor == ACTOR
    assert entry.request_id == f"req-{world.requests}"
    assert entry.uncertain  # the primary was tried and failed
    assert created.id not in world.database.evaluations


async def test_the_client_reads_its_own_journaled_writes(world: World) -> None:
    world.outage.down = True
    wiring = await world.wire()
    created = await wiring.writes.create(NewEvaluation(code="x", id=ID))
    world.fixed.advance(seconds=1)
    running = await wiring.writes.update(ID, EvaluationChanges(status=EvaluationStatus.RUNNING))
    chunk = await wiring.writes.append_log(ID, "hello ")
    second = await wiring.writes.append_log(ID, "world")
    event = await wiring.writes.record_event(ID, NewEvent(event_type="started"))

    assert created.version == 1
    assert running.version == 2
    assert running.status is EvaluationStatus.RUNNING
    assert (chunk.offset, second.offset) == (0, 6)
    assert event.event_id  # generated, so a replay stores it once
    reads = (await world.wire()).reads
    assert (await reads.get(ID)).status is EvaluationStatus.RUNNING
    # Each append moved the record on too (its ``last_update``).
    assert (await reads.get_fields(ID, frozenset({"status", "version"})))["version"] == 4
    log = (await reads.logs(ID, 0)).log
    assert log is not None
    assert log.content == "hello world"
    events = await reads.events(ID)
    assert events is not None
    assert [found.event_type for found in events] == ["started"]


async def test_bad_input_is_refused_before_it_is_journaled(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True

    with pytest.raises(InvalidTextError):
        await (await world.wire()).writes.append_log(ID, "x" * 1000)  # over the chunk limit

    assert not await world.journal.has_pending()


async def test_a_late_status_is_acknowledged_unchanged_when_the_record_is_known(
    world: World,
) -> None:
    await create(world, id=ID, status=EvaluationStatus.COMPLETED)
    world.outage.down = True

    answered = await (await world.wire()).writes.update(
        ID, EvaluationChanges(status=EvaluationStatus.QUEUED)
    )

    assert answered.status is EvaluationStatus.COMPLETED


async def test_a_record_from_before_the_outage_is_answered_from_the_cache(world: World) -> None:
    before = await create(world, id=ID)
    world.outage.down = True

    updated = await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"k": 1}))

    assert updated.version == before.version + 1
    assert updated.metadata == {"k": 1}


async def test_an_unknown_record_is_accepted_for_replay(world: World) -> None:
    await create(world, id=ID)
    await world.cache.clear()
    world.outage.down = True

    with pytest.raises(WriteAcceptedError) as accepted:
        await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"k": 1}))

    [entry] = await world.journal.pending()
    assert accepted.value.entry_id == entry.id


async def test_a_log_append_to_a_record_from_before_is_accepted_not_guessed(
    world: World,
) -> None:
    await create(world, id=ID)
    await (await world.wire()).writes.append_log(ID, "before ")
    world.outage.down = True

    # The record is cached, but its log is not: the offset cannot be known here.
    with pytest.raises(WriteAcceptedError):
        await (await world.wire()).writes.append_log(ID, "during")

    world.outage.down = False
    await world.replay().execute()
    assert "".join(c.content for c in world.database.log_chunks[ID]) == "before during"


async def test_if_match_cannot_be_checked_during_an_outage(world: World) -> None:
    created = await create(world, id=ID)
    world.outage.down = True

    with pytest.raises(BackendUnavailableError) as refused:
        await (await world.wire()).writes.update(
            ID, EvaluationChanges(metadata={"k": 1}), expected_version=created.version
        )

    assert refused.value.backend == "database"
    assert not await world.journal.has_pending()


async def test_writes_keep_their_order_through_the_journal_until_it_is_replayed(
    world: World,
) -> None:
    await create(world, id=ID)
    world.outage.down = True
    await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"a": 1}))
    world.outage.down = False  # back, but the journal is not replayed yet

    after = await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"b": 2}))

    assert len(await world.journal.pending()) == 2  # journaled too, behind the first
    assert after.metadata == {"a": 1, "b": 2}
    assert world.stored(ID).metadata == {}


async def test_replay_applies_everything_once_in_order_and_keeps_the_instants(
    world: World,
) -> None:
    world.outage.down = True
    wiring = await world.wire()
    answered = await wiring.writes.create(NewEvaluation(code="x", id=ID))
    world.fixed.advance(seconds=5)
    await wiring.writes.update(ID, EvaluationChanges(status=EvaluationStatus.RUNNING))
    await wiring.writes.append_log(ID, "line 1\n")
    await wiring.writes.record_event(ID, NewEvent(event_type="tick", event_id="ev-1"))
    world.fixed.advance(seconds=5)
    final = await wiring.writes.update(
        ID, EvaluationChanges(status=EvaluationStatus.COMPLETED, output="done")
    )
    world.outage.down = False
    world.fixed.advance(hours=1)  # replayed much later: the stored instants do not move
    entries = await world.journal.pending()

    report = await world.replay().execute()

    assert (report.applied, report.skipped, report.conflicts, report.remaining) == (5, 0, 0, 0)
    stored = world.stored(ID)
    assert stored.created_at == answered.created_at
    assert stored.updated_at == final.updated_at
    assert stored.status is EvaluationStatus.COMPLETED
    assert stored.version == final.version
    assert stored.output is not None and stored.output.text == "done"
    assert [c.content for c in world.database.log_chunks[ID]] == ["line 1\n"]
    assert [e.event_id for e in world.database.events[ID]] == ["ev-1"]
    assert not world.marks.applied  # forgotten with the journal
    replayed = await world.audit_log.list(AuditQuery(evaluation_id=ID))
    assert {entry.actor for entry in replayed} == {ACTOR}
    assert {entry.request_id for entry in replayed} == {e.request_id for e in entries}
    assert (await world.cache.get(ID)) == stored  # republished


async def test_a_replay_interrupted_midway_resumes_without_doubling(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    for n in range(4):
        await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={f"k{n}": n}))
    entries = await world.journal.pending()
    world.outage.down = False
    # The first two were applied and marked, then the process died before clearing them.
    for entry in entries[:2]:
        async with ContainerReplayScopes(world.container).open(
            AuditContext(actor=entry.actor, request_id=entry.request_id, journal_entry=entry.id)
        ) as unit:
            await unit.handlers.run(entry.intent, Target(ID))

    report = await world.replay().execute()

    assert (report.applied, report.skipped) == (2, 2)
    assert world.stored(ID).metadata == {"k0": 0, "k1": 1, "k2": 2, "k3": 3}
    assert world.stored(ID).version == 5


async def test_a_write_that_committed_before_the_failure_is_not_applied_twice(
    world: World,
) -> None:
    await create(world, id=ID)

    class CommitThenFail(MemoryUnitOfWork):
        async def commit(self) -> None:
            raise BackendUnavailableError(Backend.DATABASE, "connection reset after COMMIT")

    wiring = await world.wire()
    wiring.uow.__class__ = CommitThenFail  # the change is applied, its answer lost
    with pytest.raises(WriteAcceptedError):  # the log's end is not known here
        await wiring.writes.append_log(ID, "once")

    [entry] = await world.journal.pending()
    assert entry.uncertain
    report = await world.replay().execute()

    assert (report.applied, report.skipped) == (0, 1)
    assert [c.content for c in world.database.log_chunks[ID]] == ["once"]


async def test_a_refused_entry_is_logged_as_a_conflict_and_cleared(world: World) -> None:
    world.outage.down = True
    await create(world, id=ID)
    world.outage.down = False
    # Someone else created it meanwhile.
    other = await world.wire(AuditContext(actor="key:other", request_id="elsewhere"))
    await other.handlers.run(CreateIntent(NewEvaluation(code="other", id=ID)), Target(ID))

    report = await world.replay().execute()

    assert (report.conflicts, report.remaining) == (1, 0)
    assert not await world.journal.has_pending()


async def test_a_change_older_than_the_primary_record_is_stale(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"old": True}))
    world.outage.down = False
    world.fixed.advance(seconds=30)
    # Another replica reached the primary and changed the record after this write.
    other = await world.wire(AuditContext(actor="key:other", request_id="elsewhere"))
    await other.handlers.run(UpdateIntent(EvaluationChanges(metadata={"new": True})), Target(ID))

    report = await world.replay().execute()

    assert report.conflicts == 1
    assert world.stored(ID).metadata == {"new": True}


async def test_a_stale_update_keeps_the_fields_nobody_changed_after_it(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    await (await world.wire()).writes.update(
        ID, EvaluationChanges(metadata={"old": True}, output="from the outage", retries=2)
    )
    world.outage.down = False
    world.fixed.advance(seconds=30)
    # Another replica changed the metadata (only) after this write.
    other = await world.wire(AuditContext(actor="key:other", request_id="elsewhere"))
    await other.handlers.run(UpdateIntent(EvaluationChanges(metadata={"new": True})), Target(ID))

    report = await world.replay().execute()

    assert (report.applied, report.conflicts, report.remaining) == (1, 0, 0)
    stored = world.stored(ID)
    assert stored.metadata == {"new": True}  # theirs is newer: ours is dropped
    assert stored.output is not None and stored.output.text == "from the outage"
    assert stored.retries == 2


async def test_a_second_replayer_waits_its_turn(world: World) -> None:
    world.outage.down = True
    await create(world, id=ID)
    world.outage.down = False

    async with world.journal.replaying():
        report = await world.replay().execute()

    assert report.busy
    assert await world.journal.has_pending()


async def test_replay_stops_when_the_primary_is_still_down(world: World) -> None:
    world.outage.down = True
    await create(world, id=ID)

    with pytest.raises(BackendUnavailableError):
        await world.replay().execute()

    assert len(await world.journal.pending()) == 1


async def test_an_upload_during_an_outage_keeps_its_blob(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    body = "x" * 500  # over the thresholds: a blob

    async def chunks() -> AsyncIterator[bytes]:
        yield body.encode()

    answered = await (await world.wire()).writes.upload(ID, "output", chunks())
    assert answered.output is not None and answered.output.size == 500
    world.outage.down = False
    await world.replay().execute()

    stored = world.stored(ID).output
    assert stored is not None and stored.key is not None
    assert await world.payloads.read_text(stored) == body


async def test_reads_of_unknown_records_still_say_not_found(world: World) -> None:
    with pytest.raises(EvaluationNotFoundError):
        await (await world.wire()).reads.get(ID)


async def test_a_celery_update_and_a_delete_during_an_outage(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    outcome = await (await world.wire()).writes.celery_update(
        ID, CeleryUpdate(task_state="STARTED")
    )
    assert outcome.applied and outcome.evaluation.status is EvaluationStatus.RUNNING
    await (await world.wire()).writes.delete(ID)
    with pytest.raises(EvaluationNotFoundError):
        await (await world.wire()).reads.get(ID)
    world.outage.down = False

    await world.replay().execute()

    assert world.stored(ID).status is EvaluationStatus.RUNNING
    assert world.stored(ID).deleted_at is not None
    actions = [entry.action for entry in await world.audit_log.list(AuditQuery(evaluation_id=ID))]
    assert AuditAction.DELETE in actions


async def test_an_outage_costs_one_attempt_not_one_per_write(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    world.outage.calls = 0

    for n in range(5):
        await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"n": n}))

    assert world.outage.calls == 1  # the first write; the rest go by the cached record
    assert world.primary_down()
    world.outage.down = False
    await world.replay().execute()
    assert not world.primary_down()
    assert world.stored(ID).metadata == {"n": 4}


async def test_a_replay_asked_to_stop_ends_after_the_entry_in_hand(world: World) -> None:
    world.outage.down = True
    for n in range(3):
        await create(world, id=EvaluationId(f"eval-stop-{n}"))
    world.outage.down = False
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 1  # after the first entry

    report = await world.replay().execute(stop=stop)

    assert (report.applied, report.remaining) == (1, 2)
    assert (await world.replay().execute()).applied == 2


async def test_a_write_to_a_record_the_primary_does_not_hold_is_404(world: World) -> None:
    world.outage.down = True
    await create(world, id=ID)  # the journal holds something: writes queue behind it
    world.outage.down = False
    world.primary.mark_up()

    with pytest.raises(EvaluationNotFoundError):
        await (await world.wire()).writes.update(
            EvaluationId("eval-nobody"), EvaluationChanges(metadata={"k": 1})
        )

    assert len(await world.journal.pending()) == 1


async def test_concurrent_journaled_appends_get_their_own_offsets(tmp_path: Path) -> None:
    # On the file journal, whose appends yield to other tasks while they fsync.
    world = World(FileJournal(tmp_path))
    world.outage.down = True
    await create(world, id=ID)
    offsets: list[int] = []

    async def append(text: str) -> None:
        offsets.append((await (await world.wire()).writes.append_log(ID, text)).offset)

    async with anyio.create_task_group() as group:
        for n in range(5):
            group.start_soon(append, f"line {n}\n")

    assert sorted(offsets) == [0, 7, 14, 21, 28]


async def test_a_replayed_create_keeps_its_answered_id(world: World) -> None:
    world.outage.down = True
    answered = await create(world)  # a generated id
    world.outage.down = False
    other = await world.wire(AuditContext(actor="key:other", request_id="elsewhere"))
    await other.handlers.run(
        CreateIntent(NewEvaluation(code="theirs", id=answered.id)), Target(answered.id)
    )

    report = await world.replay().execute()

    assert report.conflicts == 1  # refused, not stored under another id
    assert world.stored(answered.id).code == "theirs"
    assert len(world.database.evaluations) == 1


async def test_a_write_that_reaches_the_primary_marks_it_up(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"a": 1}))
    world.outage.down = False
    await world.replay().execute()
    world.primary.mark_down()  # e.g. a failure after which nothing was journaled

    await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"b": 2}))

    assert not world.primary.is_down


def test_every_intent_the_journal_keeps_has_a_handler() -> None:
    assert handled() == frozenset(get_args(Intent))
